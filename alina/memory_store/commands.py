"""The data behind ``alina memory search`` and ``alina memory stats`` (printing is the CLI's job).

Both return plain dataclasses with ``to_dict()`` for ``--json``. ``memory_stats`` reports each
backend on its own: a backend that is down gets an ``error`` string and the others still report.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg import sql

from alina._errors import error_line
from alina.memory_store.runs import redact_dsn
from alina.memory_store.vector import MemoryHit, VectorMemory

__all__ = ["SearchReport", "StatsReport", "memory_stats", "search_memory"]


@dataclass
class SearchReport:
    """Ranked hits of one query (best first), with the filters that were applied."""

    query: str
    scopes: list[str] | None
    kinds: list[str] | None
    min_score: float
    location: str
    hits: list[MemoryHit]

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "scopes": self.scopes,
            "kinds": self.kinds,
            "min_score": self.min_score,
            "location": self.location,
            "hits": [h.to_dict() for h in self.hits],
        }


async def search_memory(
    memory: VectorMemory,
    query: str,
    *,
    agent: str | None = None,
    kinds: Sequence[str] | None = None,
    top_k: int = 10,
    min_score: float | None = None,
) -> SearchReport:
    """Search like ``agent`` would (its scope + shared), or every scope when ``agent`` is None.

    ``min_score`` defaults to the configured one. Raises ValueError for an empty query.
    """
    if not query.strip():
        raise ValueError("the search query is empty")
    view = memory.for_agent(agent) if agent else memory
    floor = memory.config.min_score if min_score is None else min_score
    hits = await view.search(query, kinds=kinds, top_k=top_k, min_score=floor)
    return SearchReport(
        query, view.default_scopes(), list(kinds) if kinds else None, floor, memory.location(), hits
    )


@dataclass
class StatsReport:
    """Sizes and counts per backend; a section holds ``error`` instead when its backend failed."""

    postgres: dict[str, Any] = field(default_factory=dict)
    redis: dict[str, Any] = field(default_factory=dict)
    vectors: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"postgres": self.postgres, "redis": self.redis, "vectors": self.vectors}


async def memory_stats(
    *,
    pg_dsn: str | None,
    redis_url: str | None,
    memory: VectorMemory | None,
    cache_namespace: str = "alina:llm",
    timeout_s: float = 3.0,
) -> StatsReport:
    """Row counts and sizes of every Postgres table, Redis key counts (cache keys per agent,
    run status keys) and memory use, and the vector collection's counts per scope and kind.

    A backend given as None is skipped (``{"skipped": true}``).
    """
    pg, rd, vec = await asyncio.gather(
        _postgres_stats(pg_dsn, timeout_s),
        _redis_stats(redis_url, cache_namespace, timeout_s),
        _vector_stats(memory),
    )
    return StatsReport(pg, rd, vec)


async def _postgres_stats(dsn: str | None, timeout_s: float) -> dict[str, Any]:
    if dsn is None:
        return {"skipped": True}
    out: dict[str, Any] = {"dsn": redact_dsn(dsn)}
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=max(2, int(timeout_s)), autocommit=True
        )
    except psycopg.OperationalError as exc:
        return {**out, "error": error_line(exc)}
    try:
        cur = await conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
        )
        tables: dict[str, dict[str, int]] = {}
        for name, size in await cur.fetchall():
            count = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name)))
            row = await count.fetchone()
            tables[name] = {"rows": int(row[0]) if row else 0, "bytes": int(size)}
        cur = await conn.execute("SELECT pg_database_size(current_database())")
        size_row = await cur.fetchone()
        out["database_bytes"] = int(size_row[0]) if size_row else None
        out["schema_version"] = None
        if "schema_migrations" in tables:
            cur = await conn.execute("SELECT max(version) FROM schema_migrations")
            version = await cur.fetchone()
            out["schema_version"] = version[0] if version else None
        out["tables"] = tables
    except psycopg.Error as exc:
        out["error"] = error_line(exc)
    finally:
        await conn.close()
    return out


async def _redis_stats(url: str | None, namespace: str, timeout_s: float) -> dict[str, Any]:
    if url is None:
        return {"skipped": True}
    client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    out: dict[str, Any] = {"url": url}
    try:
        per_agent: dict[str, int] = {}
        async for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            agent = key.decode(errors="replace")[len(namespace) + 1 :].split(":", 1)[0]
            per_agent[agent] = per_agent.get(agent, 0) + 1
        runs = 0
        async for _ in client.scan_iter(match="alina:run:*", count=1000):
            runs += 1
        memory = await client.info("memory")
        out.update(
            keys=int(await client.dbsize()),
            cache_keys=sum(per_agent.values()),
            cache_keys_by_agent=per_agent,
            run_status_keys=runs,
            used_memory_bytes=int(memory.get("used_memory", 0)),
        )
    except (aioredis.RedisError, OSError) as exc:
        out["error"] = error_line(exc)
    finally:
        await client.aclose()
    return out


async def _vector_stats(memory: VectorMemory | None) -> dict[str, Any]:
    if memory is None:
        return {"skipped": True}
    out: dict[str, Any] = {
        "location": memory.location(),
        "collection": memory.config.collection,
        "embedder": memory.embedder.name,
    }
    try:
        out["vectors"] = await memory.count()
        out.update(await memory.breakdown())
        path = memory.data_path()
        out["disk_bytes"] = await asyncio.to_thread(_du, path) if path is not None else None
    except Exception as exc:  # any backend failure is reported, not raised: stats must render
        out["error"] = error_line(exc)
    return out


def _du(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                continue
    return total
