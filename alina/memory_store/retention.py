"""Retention: ``alina memory prune`` deletes history beyond the limits of ``retention:`` in config.

What is pruned, backend by backend (each reported on its own; one that is down does not stop
the others):

* **Postgres**
  - *run details TTL* (``messages_ttl_days``): the messages, tool calls, routing decisions and
    events of runs that finished more than N days ago; tool calls made outside a run
    (``run_id`` NULL) older than N days too. The ``runs`` row (task, status, totals) is kept.
  - *message cap* (``max_messages``): while there are more messages than that, the details of
    the oldest finished runs go, whole runs at a time (never half a conversation).
  - *events* (``events_ttl_days``, ``max_events``): older events, then the oldest beyond the cap.
  - *checkpoints* (``checkpoints_keep_per_run``, ``checkpoints_ttl_days``): all but the last N
    of each run, and those older than the TTL. The latest checkpoint of every run is always
    kept: ``alina run --resume`` needs it, even for a run that stopped or failed.
* **Redis**: the model-response cache (keys ``alina:llm:*``, written by
  :class:`alina.models._cache.ResponseCache`) is trimmed to ``cache_max_entries`` and
  ``cache_max_mb``, least recently used first (oldest first when Redis runs an LFU policy and
  keeps no idle time). Keys are found with SCAN, never KEYS, and removed with UNLINK.
* **Vectors** (only when ``vectors_ttl_days`` is set): memories created before the cutoff.

Never touched: runs whose status is ``running`` (nothing of theirs is deleted, by any rule),
**order intents** and paper accounts (the trading audit trail: no rule here deletes from
``order_intents`` or ``paper_accounts``), the ``runs`` rows, the memory graph (entities,
relations, decisions), prompt versions and alerts.

Deletes run in batches of ``batch_size`` rows, each its own short transaction (autocommit), and
every statement re-checks its condition, so a run that is reopened meanwhile is left alone. A
dry run does the same work inside one transaction that is rolled back (the counts are exact,
interactions between rules included; nothing is deleted), and only counts in Redis and Chroma.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import redis.asyncio as aioredis
from psycopg import sql

from alina.memory_store.runs import redact_dsn

if TYPE_CHECKING:
    from alina.config import AlinaConfig, RetentionConfig
    from alina.memory_store.vector import VectorMemory

__all__ = ["CACHE_NAMESPACE", "BackendReport", "PruneCount", "PruneReport", "prune"]

CACHE_NAMESPACE = "alina:llm"
"""Key prefix of the model-response cache (``ResponseCache``'s default namespace; a test keeps
the two equal)."""

_DAY_S = 86400.0
_LOCK_TIMEOUT = "10s"
# A row of a run that is running right now: never deleted (alias t = the table being pruned).
_NOT_RUNNING = "NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = t.run_id AND r.status = 'running')"
# The run of this row finished before the cutoff (parameter: the TTL in seconds).
_OLD_FINISHED_RUN = (
    "t.run_id IN (SELECT r.id FROM runs r WHERE r.status <> 'running' "
    "AND coalesce(r.finished_at, r.started_at) < now() - %s * interval '1 second')"
)
_RUN_DETAIL_TABLES = ("messages", "tool_calls", "routing_decisions", "events")


# -- report --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PruneCount:
    """``count`` rows/keys of ``target`` deleted (or, in a dry run, to be deleted) by ``rule``."""

    target: str
    rule: str
    count: int


@dataclass
class BackendReport:
    """One backend's outcome. ``status``: ok | skipped (nothing configured for it) |
    unavailable (could not connect) | error (connected, then failed)."""

    backend: str
    location: str = ""
    status: str = "ok"
    error: str | None = None
    counts: list[PruneCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in ("unavailable", "error")

    def deleted(self) -> dict[str, int]:
        """Total per target (table, cache entries, vector memories)."""
        out: dict[str, int] = {}
        for c in self.counts:
            out[c.target] = out.get(c.target, 0) + c.count
        return out

    def add(self, target: str, rule: str, count: int) -> None:
        self.counts.append(PruneCount(target, rule, count))

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "location": self.location, "error": self.error,
            "deleted": self.deleted(), "rules": [c.__dict__ for c in self.counts], "notes": self.notes,
        }  # fmt: skip


@dataclass
class PruneReport:
    """What :func:`prune` did (or would do, ``dry_run``), per backend."""

    dry_run: bool
    postgres: BackendReport
    redis: BackendReport
    vectors: BackendReport
    duration_s: float = 0.0

    def backends(self) -> list[BackendReport]:
        return [self.postgres, self.redis, self.vectors]

    @property
    def ok(self) -> bool:
        """False when any backend was unavailable or failed (the CLI exits 1)."""
        return not any(b.failed for b in self.backends())

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run, "ok": self.ok, "duration_s": round(self.duration_s, 3),
            **{b.backend: b.to_dict() for b in self.backends()},
        }  # fmt: skip


def _error(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _days(days: float) -> str:
    return f"{days:g}d"


# -- entry point ---------------------------------------------------------------------------------
async def prune(
    config: AlinaConfig,
    *,
    dry_run: bool = False,
    pg_dsn: str | None = None,
    redis_url: str | None = None,
    memory: VectorMemory | None = None,
    timeout_s: float = 5.0,
) -> PruneReport:
    """Apply ``config.retention`` to Postgres, the Redis response cache and the vector memory.

    ``pg_dsn`` / ``redis_url`` default to the configured servers; ``memory`` (only used when
    ``vectors_ttl_days`` is set) defaults to the configured vector memory, opened and closed
    here. Never raises for a backend that is down or fails: its section of the report says so
    (``status`` unavailable/error) and :attr:`PruneReport.ok` is False. Never deletes order
    intents, the runs themselves, or anything of a run that is still running (see the module
    docstring for every rule).
    """
    started = time.monotonic()
    rc = config.retention
    pg, rd, vec = await asyncio.gather(
        _prune_postgres(rc, pg_dsn or config.postgres.dsn(), dry_run, timeout_s),
        _prune_redis(rc, redis_url or config.redis.url(), dry_run, timeout_s),
        _prune_vectors(config, memory, dry_run),
    )
    return PruneReport(dry_run, pg, rd, vec, time.monotonic() - started)


# -- Postgres ------------------------------------------------------------------------------------
def _is_connection_error(exc: BaseException) -> bool:
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


class _PgPruner:
    def __init__(
        self, conn: psycopg.AsyncConnection[Any], rc: RetentionConfig, report: BackendReport
    ) -> None:
        self.conn, self.rc, self.report = conn, rc, report
        self.tables: set[str] = set()

    async def load_tables(self) -> None:
        cur = await self.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        )
        self.tables = {row[0] for row in await cur.fetchall()}

    def has(self, *tables: str) -> bool:
        missing = [t for t in tables if t not in self.tables]
        for t in missing:
            note = f"table {t} does not exist (schema not migrated? run `alina up`): skipped"
            if note not in self.report.notes:
                self.report.notes.append(note)
        return not missing

    async def count(self, query: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(query, params)  # type: ignore[arg-type]
        row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def delete(
        self,
        table: str,
        where: str,
        params: Sequence[Any] = (),
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Delete the rows of ``table`` (alias ``t``) matching ``where``, ``batch_size`` per
        statement; with ``order_by``/``limit``, at most ``limit`` rows, in that order."""
        total = 0
        while limit is None or total < limit:
            n = self.rc.batch_size if limit is None else min(self.rc.batch_size, limit - total)
            query = sql.SQL(
                "DELETE FROM {t} t WHERE t.ctid = ANY(ARRAY(SELECT t.ctid FROM {t} t WHERE {w}{o} LIMIT %s)) "
                "AND {w}"
            ).format(
                t=sql.Identifier(table), w=sql.SQL(where),  # type: ignore[arg-type]
                o=sql.SQL(f" ORDER BY {order_by}" if order_by else ""),  # type: ignore[arg-type]
            )  # fmt: skip
            cur = await self.conn.execute(query, (*params, n, *params))
            if cur.rowcount <= 0:
                break
            total += cur.rowcount
        return total

    # -- rules -----------------------------------------------------------------------------------
    async def run_details_ttl(self) -> None:
        days = self.rc.messages_ttl_days
        if days is None or not self.has("runs"):
            return
        rule = f"run finished > {_days(days)} ago"
        for table in _RUN_DETAIL_TABLES:
            if not self.has(table):
                continue
            where, params = f"{_OLD_FINISHED_RUN} AND {_NOT_RUNNING}", [days * _DAY_S]
            if table == "tool_calls":  # tool calls made outside any run age on their own
                where = (
                    f"(({_OLD_FINISHED_RUN}) OR (t.run_id IS NULL "
                    "AND t.created_at < now() - %s * interval '1 second')) AND " + _NOT_RUNNING
                )
                params = [days * _DAY_S, days * _DAY_S]
            self.report.add(table, rule, await self.delete(table, where, params))

    async def message_cap(self) -> None:
        cap = self.rc.max_messages
        if cap is None or not self.has("runs", "messages"):
            return
        excess = await self.count("SELECT count(*) FROM messages") - cap
        rule = f"over {cap} messages, oldest finished runs first"
        if excess <= 0:
            for table in _RUN_DETAIL_TABLES:
                if table in self.tables:
                    self.report.add(table, rule, 0)
            return
        chosen: list[str] = []
        covered, offset, page = 0, 0, 1000
        while covered < excess:
            cur = await self.conn.execute(
                "SELECT r.id, (SELECT count(*) FROM messages m WHERE m.run_id = r.id) FROM runs r "
                "WHERE r.status <> 'running' ORDER BY coalesce(r.finished_at, r.started_at), r.id "
                "LIMIT %s OFFSET %s",
                (page, offset),
            )
            rows = await cur.fetchall()
            if not rows:
                break
            offset += len(rows)
            for run_id, n in rows:
                if n and covered < excess:
                    chosen.append(run_id)
                    covered += int(n)
        if covered < excess:
            self.report.notes.append(
                f"messages stay over max_messages ({cap}) by {excess - covered}: they belong to running runs"
            )
        totals = dict.fromkeys(_RUN_DETAIL_TABLES, 0)
        for s in range(0, len(chosen), 500):
            ids = chosen[s : s + 500]
            for table in _RUN_DETAIL_TABLES:
                if table in self.tables:
                    totals[table] += await self.delete(table, f"t.run_id = ANY(%s) AND {_NOT_RUNNING}", [ids])
        for table, n in totals.items():
            if table in self.tables:
                self.report.add(table, rule, n)

    async def events(self) -> None:
        if not self.has("events"):
            return
        days, cap = self.rc.events_ttl_days, self.rc.max_events
        if days is not None:
            n = await self.delete(
                "events",
                f"t.created_at < now() - %s * interval '1 second' AND (t.run_id IS NULL OR {_NOT_RUNNING})",
                [days * _DAY_S],
            )
            self.report.add("events", f"older than {_days(days)}", n)
        if cap is not None:
            excess = await self.count("SELECT count(*) FROM events") - cap
            n = 0
            if excess > 0:
                n = await self.delete(
                    "events", f"(t.run_id IS NULL OR {_NOT_RUNNING})", order_by="t.id", limit=excess
                )
                if n < excess:
                    self.report.notes.append(
                        f"events stay over max_events ({cap}) by {excess - n}: they belong to running runs"
                    )
            self.report.add("events", f"over {cap} events, oldest first", n)

    async def checkpoints(self) -> None:
        if not self.has("checkpoints"):
            return
        keep, days = self.rc.checkpoints_keep_per_run, self.rc.checkpoints_ttl_days
        # "Not the latest" is spelled into every condition: a newer checkpoint of the run exists.
        if keep is not None:
            n = await self.delete(
                "checkpoints",
                "(SELECT count(*) FROM checkpoints n WHERE n.run_id = t.run_id AND n.turn > t.turn) >= %s "
                f"AND {_NOT_RUNNING}",
                [keep],
            )
            self.report.add("checkpoints", f"beyond the last {keep} per run", n)
        if days is not None:
            n = await self.delete(
                "checkpoints",
                "t.created_at < now() - %s * interval '1 second' AND EXISTS (SELECT 1 FROM checkpoints n "
                f"WHERE n.run_id = t.run_id AND n.turn > t.turn) AND {_NOT_RUNNING}",
                [days * _DAY_S],
            )
            self.report.add("checkpoints", f"older than {_days(days)}, not a run's latest", n)

    async def run_all(self) -> None:
        await self.load_tables()
        await self.run_details_ttl()
        await self.message_cap()
        await self.events()
        await self.checkpoints()


async def _prune_postgres(rc: RetentionConfig, dsn: str, dry_run: bool, timeout_s: float) -> BackendReport:
    report = BackendReport("postgres", redact_dsn(dsn))
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=max(2, int(timeout_s)), autocommit=True
        )
    except psycopg.OperationalError as exc:
        report.status, report.error = "unavailable", _error(exc)
        return report
    pruner = _PgPruner(conn, rc, report)
    try:
        # Wait at most this long for a lock: better to skip a prune than to queue writers behind it.
        await conn.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
        if dry_run:
            async with conn.transaction(force_rollback=True):
                await pruner.run_all()
        else:
            await pruner.run_all()
    except psycopg.Error as exc:
        report.status = "unavailable" if _is_connection_error(exc) else "error"
        report.error = _error(exc)
    finally:
        await conn.close()
    return report


# -- Redis ---------------------------------------------------------------------------------------
async def _prune_redis(rc: RetentionConfig, url: str, dry_run: bool, timeout_s: float) -> BackendReport:
    report = BackendReport("redis", url)
    max_entries, max_mb = rc.cache_max_entries, rc.cache_max_mb
    if max_entries is None and max_mb is None:
        report.status = "skipped"
        report.notes.append("no cache limit configured (retention.cache_max_entries / cache_max_mb)")
        return report
    client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        await _trim_cache(client, rc, report, dry_run)
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
        report.status, report.error = "unavailable", _error(exc)
    except aioredis.RedisError as exc:
        report.status, report.error = "error", _error(exc)
    finally:
        await client.aclose()
    return report


async def _trim_cache(
    client: aioredis.Redis, rc: RetentionConfig, report: BackendReport, dry_run: bool
) -> None:
    max_entries, max_mb = rc.cache_max_entries, rc.cache_max_mb
    max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
    keys: list[bytes] = [k async for k in client.scan_iter(match=f"{CACHE_NAMESPACE}:*", count=1000)]
    limits = " and ".join(
        ([f"max {max_entries} entries"] if max_entries is not None else [])
        + ([f"max {max_mb:g} MiB"] if max_mb is not None else [])
    )
    over_count = max_entries is not None and len(keys) > max_entries
    if not over_count and max_bytes is None:
        report.add("cache entries", f"{limits}, least recently used first", 0)
        report.notes.append(f"{len(keys)} cache entries")
        return
    # Idle time (LRU) and size of every entry, pipelined; OBJECT/MEMORY do not touch the keys.
    idle: list[Any] = []
    sizes: list[Any] = []
    order = "least recently used"
    for s in range(0, len(keys), 1000):
        chunk = keys[s : s + 1000]
        pipe = client.pipeline(transaction=False)
        for k in chunk:
            pipe.object("idletime", k)
            if max_bytes is not None:
                pipe.memory_usage(k)
        res = await pipe.execute(raise_on_error=False)
        step = 2 if max_bytes is not None else 1
        idle += res[0::step]
        if max_bytes is not None:
            sizes += res[1::step]
    if any(isinstance(v, aioredis.ResponseError) for v in idle):
        # An LFU maxmemory policy keeps no idle time: fall back to age (least remaining TTL first).
        order = "oldest"
        idle = []
        for s in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for k in keys[s : s + 1000]:
                pipe.pttl(k)
            idle += [-int(v) if isinstance(v, int) and v >= 0 else 0 for v in await pipe.execute()]
    rows = [
        (k, int(i) if isinstance(i, int) else -1, int(b) if isinstance(b, int) else 0)
        for k, i, b in zip(keys, idle, sizes or [0] * len(keys), strict=True)
        if i is not None  # None: the key expired since the SCAN
    ]
    rows.sort(key=lambda r: (-r[1], r[0]))  # most idle (or oldest) first
    count, total_bytes = len(rows), sum(r[2] for r in rows)
    victims: list[bytes] = []
    for key, _idle, size in rows:
        over = (max_entries is not None and count > max_entries) or (
            max_bytes is not None and total_bytes > max_bytes
        )
        if not over:
            break
        victims.append(key)
        count -= 1
        total_bytes -= size
    deleted = len(victims)
    if not dry_run and victims:
        deleted = 0
        for s in range(0, len(victims), rc.batch_size):
            deleted += int(await client.unlink(*victims[s : s + rc.batch_size]))
    report.add("cache entries", f"{limits}, {order} first", deleted)
    report.notes.append(
        f"{len(rows)} cache entries ({sum(r[2] for r in rows)} bytes) before, "
        f"{len(rows) - len(victims)} ({total_bytes} bytes) after"
    )


# -- vectors -------------------------------------------------------------------------------------
async def _prune_vectors(config: AlinaConfig, memory: VectorMemory | None, dry_run: bool) -> BackendReport:
    from alina.memory_store.vector import VectorConfig, VectorMemory, VectorStoreUnavailableError

    days = config.retention.vectors_ttl_days
    report = BackendReport("vectors")
    if days is None:
        report.status = "skipped"
        report.notes.append("no vector TTL configured (retention.vectors_ttl_days)")
        return report
    own = memory is None
    if memory is None:
        section = getattr(config, "memory", None)  # the vector store's section, when configured
        memory = VectorMemory(
            section if isinstance(section, VectorConfig) else None, base_dir=config.data_dir()
        )
    report.location = memory.location()
    try:
        n = await memory.expire(time.time() - days * _DAY_S, dry_run=dry_run)
        report.add("vector memories", f"older than {_days(days)}", n)
    except VectorStoreUnavailableError as exc:
        report.status, report.error = "unavailable", _error(exc)
    except Exception as exc:  # any other backend failure is reported: the other backends still count
        report.status, report.error = "error", _error(exc)
    finally:
        if own:
            await memory.close()
    return report
