"""Retention (`alina memory prune`) on real Postgres, Redis and Chroma: TTLs, size caps, running
runs untouched, the latest checkpoint kept, dry runs, a backend down, the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
import yaml
from autogen_core.models import CreateResult, RequestUsage
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb
from typer.testing import CliRunner

from alina.cli import app
from alina.config import AlinaConfig, RetentionConfig
from alina.memory_store.retention import CACHE_NAMESPACE, PruneReport, prune
from alina.memory_store.runs import RunStore
from alina.memory_store.vector import MemoryItem, VectorConfig, VectorMemory
from alina.models._cache import ResponseCache

from .conftest import HashEmbedder

pytestmark = pytest.mark.integration

REDIS_DB = 9  # the session's Redis is shared: keep these tests' cache keys in their own db
NO_RULES = dict(
    messages_ttl_days=None,
    max_messages=None,
    events_ttl_days=None,
    max_events=None,
    checkpoints_keep_per_run=None,
    checkpoints_ttl_days=None,
    cache_max_entries=None,
    cache_max_mb=None,
    batch_size=3,  # tiny batches: every delete loops
)
TABLES = ("runs", "messages", "tool_calls", "routing_decisions", "events", "checkpoints", "order_intents")


def cfg(**retention: Any) -> AlinaConfig:
    """Defaults everywhere, no retention rule except the ones given."""
    return AlinaConfig(retention=RetentionConfig(**{**NO_RULES, **retention}))


@pytest.fixture
async def db(fresh_pg_dsn: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A migrated fresh database and an autocommit connection to it."""
    async with RunStore(fresh_pg_dsn):
        pass
    conn = await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True)
    yield conn
    await conn.close()


@pytest.fixture
async def redis_url(redis_service: Any) -> AsyncIterator[str]:
    url = f"redis://127.0.0.1:{redis_service.port}/{REDIS_DB}"
    client = aioredis.Redis.from_url(url)
    await client.flushdb()
    yield url
    await client.flushdb()
    await client.aclose()


async def seed_run(
    conn: psycopg.AsyncConnection[Any],
    run_id: str,
    *,
    status: str = "completed",
    days_ago: float = 0.0,
    messages: int = 3,
    checkpoints: int = 0,
    checkpoint_days_ago: float | None = None,
) -> None:
    """A run that started and (unless running) finished ``days_ago``, with ``messages`` messages,
    one tool call, one routing decision and one event per message, and ``checkpoints`` checkpoints."""
    ago = f"now() - interval '{days_ago * 86400} seconds'"
    finished = "NULL" if status == "running" else ago
    await conn.execute(
        "INSERT INTO runs (id, task, status, started_at, finished_at) "
        f"VALUES (%s, 't', %s, {ago}, {finished})",
        (run_id, status),
    )
    for seq in range(1, messages + 1):
        await conn.execute(
            f"INSERT INTO messages (run_id, seq, source, type, content, created_at) "
            f"VALUES (%s, %s, 'trader', 'TextMessage', 'm', {ago})",
            (run_id, seq),
        )
        await conn.execute(
            f"INSERT INTO events (run_id, kind, created_at) VALUES (%s, 'turn', {ago})", (run_id,)
        )
    await conn.execute(
        f"INSERT INTO tool_calls (run_id, agent, tool, duration_ms, outcome, created_at) "
        f"VALUES (%s, 'trader', 'price', 1, 'ok', {ago})",
        (run_id,),
    )
    await conn.execute(
        f"INSERT INTO routing_decisions (run_id, seq, speaker, method, confidence, created_at) "
        f"VALUES (%s, 1, 'trader', 'rules', 1, {ago})",
        (run_id,),
    )
    cp_ago = days_ago if checkpoint_days_ago is None else checkpoint_days_ago
    for turn in range(1, checkpoints + 1):
        await conn.execute(
            "INSERT INTO checkpoints (run_id, turn, team_state, prompt_versions, message_count, created_at) "
            f"VALUES (%s, %s, %s, %s, %s, now() - interval '{cp_ago * 86400} seconds')",
            (run_id, turn, Jsonb({"turn": turn}), Jsonb({}), turn),
        )


async def seed_order_intent(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(
        "INSERT INTO order_intents (client_order_id, mode, exchange, symbol, side, type, amount, status, "
        "created_at) VALUES ('coid-1', 'paper', 'binance', 'BTC/USDT', 'buy', 'market', 0.01, 'placed', "
        "now() - interval '3650 days')"
    )


async def counts(conn: psycopg.AsyncConnection[Any], run_id: str | None = None) -> dict[str, int]:
    out = {}
    for t in TABLES:
        if run_id is None:
            cur = await conn.execute(f"SELECT count(*) FROM {t}")
        elif t == "runs":
            cur = await conn.execute("SELECT count(*) FROM runs WHERE id = %s", (run_id,))
        elif t == "order_intents":
            continue
        else:
            cur = await conn.execute(f"SELECT count(*) FROM {t} WHERE run_id = %s", (run_id,))
        row = await cur.fetchone()
        out[t] = row[0] if row else 0
    return out


async def turns(conn: psycopg.AsyncConnection[Any], run_id: str) -> list[int]:
    cur = await conn.execute("SELECT turn FROM checkpoints WHERE run_id = %s ORDER BY turn", (run_id,))
    return [r[0] for r in await cur.fetchall()]


def deleted(report: PruneReport, backend: str = "postgres") -> dict[str, int]:
    return getattr(report, backend).deleted()  # type: ignore[no-any-return]


# -- Postgres ------------------------------------------------------------------------------------
async def test_ttl_prunes_the_details_of_old_finished_runs_only(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, redis_url: str
) -> None:
    await seed_run(db, "old", days_ago=100, messages=4)
    await seed_run(db, "old-failed", status="failed", days_ago=95, messages=2)
    await seed_run(db, "recent", days_ago=2, messages=3)
    await seed_run(db, "old-running", status="running", days_ago=200, messages=5)
    await db.execute(  # tool calls outside any run age on their own
        "INSERT INTO tool_calls (run_id, agent, tool, duration_ms, outcome, created_at) VALUES "
        "(NULL, 'trader', 'price', 1, 'ok', now() - interval '120 days'), "
        "(NULL, 'trader', 'price', 1, 'ok', now() - interval '1 day')"
    )
    await seed_order_intent(db)

    report = await prune(cfg(messages_ttl_days=90), pg_dsn=fresh_pg_dsn, redis_url=redis_url)

    assert report.ok and report.postgres.status == "ok", report.to_dict()
    assert deleted(report) == {"messages": 6, "tool_calls": 3, "routing_decisions": 2, "events": 6}
    for gone in ("old", "old-failed"):  # details gone, the run row (the summary) kept
        assert await counts(db, gone) == {
            "runs": 1,
            "messages": 0,
            "tool_calls": 0,
            "routing_decisions": 0,
            "events": 0,
            "checkpoints": 0,
        }
    assert (await counts(db, "recent"))["messages"] == 3
    running = await counts(db, "old-running")
    assert (running["messages"], running["tool_calls"], running["events"]) == (5, 1, 5)
    total = await counts(db)
    assert total["tool_calls"] == 3 and total["order_intents"] == 1  # the recent null-run call stays


async def test_message_cap_trims_whole_runs_oldest_first_and_never_running_ones(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, redis_url: str
) -> None:
    await seed_run(db, "a", days_ago=30, messages=5)
    await seed_run(db, "b", days_ago=20, messages=5)
    await seed_run(db, "c", days_ago=10, messages=5)
    await seed_run(db, "live", status="running", days_ago=40, messages=5)

    report = await prune(cfg(max_messages=12), pg_dsn=fresh_pg_dsn, redis_url=redis_url)

    assert deleted(report)["messages"] == 10 and deleted(report)["events"] == 10
    assert [(await counts(db, r))["messages"] for r in ("a", "b", "c", "live")] == [0, 0, 5, 5]
    assert report.postgres.notes == []

    # A cap the running run alone exceeds: every finished run goes, the running one stays, a note says so.
    report = await prune(cfg(max_messages=2), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert deleted(report)["messages"] == 5 and (await counts(db, "live"))["messages"] == 5
    assert any("running runs" in n for n in report.postgres.notes)
    assert report.ok


async def test_events_ttl_and_cap_skip_running_runs(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, redis_url: str
) -> None:
    await seed_run(db, "live", status="running", days_ago=50, messages=3)  # 3 old events of a running run
    for days in (60, 45, 40, 2, 1):
        await db.execute(
            "INSERT INTO events (run_id, kind, created_at) "
            f"VALUES (NULL, 'tick', now() - interval '{days} days')"
        )
    await db.execute("INSERT INTO events (run_id, kind) VALUES ('no-such-run', 'tick')")

    report = await prune(cfg(events_ttl_days=30), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert deleted(report) == {"events": 3}
    report = await prune(cfg(max_events=4), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert deleted(report) == {"events": 2} and report.postgres.notes == []  # 6 left, oldest first
    cur = await db.execute("SELECT coalesce(run_id, '-') FROM events ORDER BY id")
    assert [r[0] for r in await cur.fetchall()] == ["live"] * 3 + ["no-such-run"]
    # A cap below what the running run holds: only the others go, and a note says why.
    report = await prune(cfg(max_events=2), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert deleted(report) == {"events": 1} and report.ok
    assert any("running runs" in n for n in report.postgres.notes)


async def test_checkpoints_keep_the_last_n_and_always_the_latest(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, redis_url: str
) -> None:
    await seed_run(db, "done", days_ago=1, messages=1, checkpoints=6)
    await seed_run(db, "stopped", status="stopped", days_ago=1, checkpoints=4, checkpoint_days_ago=30)
    await seed_run(db, "live", status="running", days_ago=1, checkpoints=5, checkpoint_days_ago=30)

    report = await prune(cfg(checkpoints_keep_per_run=2), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert deleted(report) == {"checkpoints": 6}
    assert await turns(db, "done") == [5, 6] and await turns(db, "stopped") == [3, 4]
    assert await turns(db, "live") == [1, 2, 3, 4, 5]  # a running run is never touched

    # TTL: every checkpoint of "stopped" is 30 days old, but its latest is what a resume needs.
    report = await prune(
        cfg(checkpoints_ttl_days=7, messages_ttl_days=0.5), pg_dsn=fresh_pg_dsn, redis_url=redis_url
    )
    assert report.postgres.deleted()["checkpoints"] == 1
    assert await turns(db, "stopped") == [4] and await turns(db, "done") == [5, 6]
    assert await turns(db, "live") == [1, 2, 3, 4, 5]
    # The run details TTL does not take a run's latest checkpoint either.
    assert (await counts(db, "stopped"))["messages"] == 0 and await turns(db, "stopped") == [4]


async def test_dry_run_deletes_nothing_and_counts_what_a_real_run_deletes(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, redis_url: str
) -> None:
    await seed_run(db, "old", days_ago=100, messages=4, checkpoints=5)
    await seed_run(db, "mid", days_ago=50, messages=6, checkpoints=3)
    await seed_run(db, "new", days_ago=1, messages=2, checkpoints=2)
    await seed_run(db, "live", status="running", days_ago=1, messages=2, checkpoints=4)
    cache = ResponseCache(redis_url)
    for i in range(6):
        await cache.set(f"{CACHE_NAMESPACE}:trader:v1:{i}", _result(i))
    rules = cfg(
        messages_ttl_days=90,
        max_messages=8,
        events_ttl_days=60,
        max_events=9,
        checkpoints_keep_per_run=2,
        checkpoints_ttl_days=30,
        cache_max_entries=4,
    )
    before = await counts(db)

    dry = await prune(rules, dry_run=True, pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert dry.dry_run and dry.ok
    assert await counts(db) == before
    assert len([k async for k in cache._redis.scan_iter(match=f"{CACHE_NAMESPACE}:*")]) == 6

    real = await prune(rules, pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert [c.__dict__ for c in dry.postgres.counts] == [c.__dict__ for c in real.postgres.counts]
    assert dry.redis.deleted() == real.redis.deleted() == {"cache entries": 2}
    # keep 2: old 3 + mid 1; then the TTL: old turn 4 and mid turn 2 (each run keeps its latest)
    assert deleted(real)["messages"] == 4 + 6 and deleted(real)["checkpoints"] == 3 + 1 + 1 + 1
    assert (await counts(db))["messages"] == before["messages"] - 10
    json.dumps(dry.to_dict())  # the --json payload is plain JSON
    await cache.close()


# -- Redis ---------------------------------------------------------------------------------------
def _result(i: int) -> CreateResult:
    return CreateResult(
        finish_reason="stop",
        content=f"answer {i} " + "x" * 200,
        usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
        cached=False,
    )


def test_cache_namespace_is_the_response_caches() -> None:
    assert ResponseCache("redis://127.0.0.1:1/0").namespace == CACHE_NAMESPACE


async def test_cache_trimmed_least_recently_used_first(fresh_pg_dsn: str, redis_url: str) -> None:
    cache = ResponseCache(redis_url, ttl_s=3600)
    keys = [f"{CACHE_NAMESPACE}:trader:v1:{i:02d}" for i in range(10)]
    for i, k in enumerate(keys):
        await cache.set(k, _result(i))
    await cache._redis.set("alina:run:r1", "x")  # not a cache key: never counted or deleted
    await cache._redis.set("other", "x")
    await asyncio.sleep(2.1)  # Redis keeps idle time in whole seconds
    recently_used = keys[:3]  # the OLDEST writes, but read just now
    for k in recently_used:
        assert await cache.get(k) is not None

    report = await prune(cfg(cache_max_entries=3), pg_dsn=fresh_pg_dsn, redis_url=redis_url)

    assert report.redis.status == "ok" and report.redis.deleted() == {"cache entries": 7}
    assert "least recently used" in report.redis.counts[0].rule
    left = sorted([k.decode() async for k in cache._redis.scan_iter(match=f"{CACHE_NAMESPACE}:*")])
    assert left == recently_used
    assert await cache._redis.exists("alina:run:r1", "other") == 2

    # A memory cap: entries go until what is left fits.
    size = int(await cache._redis.memory_usage(keys[0]) or 0)
    report = await prune(cfg(cache_max_mb=(size * 1.5) / 2**20), pg_dsn=fresh_pg_dsn, redis_url=redis_url)
    assert report.redis.deleted() == {"cache entries": 2}
    assert len([k async for k in cache._redis.scan_iter(match=f"{CACHE_NAMESPACE}:*")]) == 1
    await cache.close()


# -- one backend down ----------------------------------------------------------------------------
async def test_redis_down_postgres_still_pruned(
    db: psycopg.AsyncConnection[Any], fresh_pg_dsn: str, free_port: Callable[[], int]
) -> None:
    await seed_run(db, "old", days_ago=100, messages=4)
    report = await prune(
        cfg(messages_ttl_days=90, cache_max_entries=10),
        pg_dsn=fresh_pg_dsn,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        timeout_s=1,
    )
    assert report.redis.status == "unavailable" and report.redis.error
    assert report.postgres.status == "ok" and deleted(report)["messages"] == 4
    assert (await counts(db, "old"))["messages"] == 0
    assert not report.ok and report.to_dict()["ok"] is False


async def test_postgres_down_redis_still_trimmed(redis_url: str, free_port: Callable[[], int]) -> None:
    cache = ResponseCache(redis_url)
    for i in range(5):
        await cache.set(f"{CACHE_NAMESPACE}:monitor:v1:{i}", _result(i))
    down = f"postgresql://postgres@127.0.0.1:{free_port()}/alina"
    report = await prune(
        cfg(messages_ttl_days=90, cache_max_entries=2), redis_url=redis_url, pg_dsn=down, timeout_s=2
    )
    assert report.postgres.status == "unavailable" and "postgres@127.0.0.1" in report.postgres.location
    assert report.redis.deleted() == {"cache entries": 3} and not report.ok
    await cache.close()


# -- vectors -------------------------------------------------------------------------------------
async def test_vector_memories_expire_when_a_ttl_is_set(
    tmp_path: Path, fresh_pg_dsn: str, redis_url: str
) -> None:
    memory = VectorMemory(VectorConfig(path=str(tmp_path / "chroma")), embedder=HashEmbedder())
    old = time.time() - 40 * 86400
    await memory.add_many(
        [
            MemoryItem("old lesson about BTC funding", "lesson", "shared", id="o1", created_at=old),
            MemoryItem("old trader note", "note", "trader", id="o2", created_at=old),
            MemoryItem("fresh alert", "alert", "monitor", id="n1"),
        ]
    )

    skipped = await prune(cfg(), pg_dsn=fresh_pg_dsn, redis_url=redis_url, memory=memory)
    assert skipped.vectors.status == "skipped" and await memory.count() == 3
    dry = await prune(
        cfg(vectors_ttl_days=30), dry_run=True, pg_dsn=fresh_pg_dsn, redis_url=redis_url, memory=memory
    )
    assert dry.vectors.deleted() == {"vector memories": 2} and await memory.count() == 3
    real = await prune(cfg(vectors_ttl_days=30), pg_dsn=fresh_pg_dsn, redis_url=redis_url, memory=memory)
    assert real.vectors.deleted() == {"vector memories": 2} and real.ok
    assert [h.id for h in await memory.search("fresh alert", min_score=-1)] == ["n1"]
    await memory.close()


# -- CLI -----------------------------------------------------------------------------------------
def _config_file(tmp_path: Path, dsn: str, redis_port: int, **retention: Any) -> Path:
    params = conninfo_to_dict(dsn)
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(tmp_path / "data")},
                "postgres": {"port": int(params["port"]), "database": params["dbname"]},
                "redis": {"port": redis_port, "db": REDIS_DB},
                "retention": {**NO_RULES, **retention},
            }
        )
    )
    return path


async def test_cli_prune_json_dry_run_and_exit_codes(
    db: psycopg.AsyncConnection[Any],
    fresh_pg_dsn: str,
    redis_url: str,
    redis_service: Any,
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    await seed_run(db, "old", days_ago=100, messages=4, checkpoints=3)
    path = _config_file(
        tmp_path,
        fresh_pg_dsn,
        redis_service.port,
        messages_ttl_days=90,
        checkpoints_keep_per_run=1,
        cache_max_entries=10,
    )

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(app, ["memory", "prune", *args, "--config", str(path)])

    r = await asyncio.to_thread(invoke, "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["dry_run"] is True and data["ok"] is True
    assert data["postgres"]["deleted"] == {
        "messages": 4,
        "tool_calls": 1,
        "routing_decisions": 1,
        "events": 4,
        "checkpoints": 2,
    }
    assert data["redis"]["status"] == "ok" and data["vectors"]["status"] == "skipped"
    assert (await counts(db, "old"))["messages"] == 4

    r = await asyncio.to_thread(invoke)  # the table
    assert r.exit_code == 0, r.output
    assert "deleted" in r.stdout and "messages" in r.stdout and "postgres" in r.stdout
    assert (await counts(db, "old"))["messages"] == 0 and await turns(db, "old") == [3]

    # Redis down: Postgres is still pruned, exit 1.
    await seed_run(db, "old2", days_ago=100, messages=2)
    down = _config_file(tmp_path, fresh_pg_dsn, free_port(), messages_ttl_days=90, cache_max_entries=10)
    r = await asyncio.to_thread(
        lambda: CliRunner().invoke(app, ["memory", "prune", "--json", "--config", str(down)])
    )
    assert r.exit_code == 1, r.output
    data = json.loads(r.stdout)
    assert data["redis"]["status"] == "unavailable" and data["postgres"]["deleted"]["messages"] == 2

    # Bad configuration: exit 2, nothing done.
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"retention": {"max_messages": 0}}))
    r = await asyncio.to_thread(lambda: CliRunner().invoke(app, ["memory", "prune", "--config", str(bad)]))
    assert r.exit_code == 2 and "retention.max_messages" in r.output
