"""EventWriter: batching, back pressure, no loss on failure (scripted store), then the real thing
on Postgres: a 10,000-event burst, and Postgres stopped mid-burst and started again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alina.memory_store.runs import RunStore, StoreUnavailableError
from alina.memory_store.writer import EventWriter
from alina.runtime.services import PostgresService


# -- a scripted store (unit tests of the writer's logic) -----------------------------------------
class _Copy:
    def __init__(self, buffer: list[tuple[Any, ...]]) -> None:
        self.buffer = buffer

    async def __aenter__(self) -> _Copy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def write_row(self, row: tuple[Any, ...]) -> None:
        self.buffer.append(row)


class _Conn:
    """Mimics the two write paths: a plain COPY (an event id already stored is a unique violation)
    and COPY into a staging table merged with ON CONFLICT (event_id) DO NOTHING."""

    def __init__(self, store: FakeStore) -> None:
        self.store, self.buffer = store, []  # type: ignore[var-annotated]
        self.staged = self.merged = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield
        if self.store.fail_on_commit:
            raise StoreUnavailableError("cannot reach Postgres (scripted: commit lost)")
        ids = {r[4] for r in self.store.rows}
        if self.staged:
            assert self.merged
            self.buffer = [r for r in self.buffer if r[4] not in ids]
        elif any(r[4] in ids for r in self.buffer):
            raise psycopg.errors.UniqueViolation("duplicate key value violates events_event_id_key")
        self.store.rows.extend(self.buffer)  # committed only when the block succeeds
        self.store.copies += 1
        self.store.staged_copies += self.staged
        if self.store.lose_reply:  # committed, but the client never hears it
            self.store.lose_reply = False
            raise StoreUnavailableError("cannot reach Postgres (scripted: reply lost after commit)")

    async def execute(self, statement: str) -> None:
        if statement.startswith("CREATE TEMP TABLE alina_events_in"):
            self.staged = True
        else:
            assert (
                statement.startswith("INSERT INTO events")
                and "ON CONFLICT (event_id) DO NOTHING" in statement
            )
            self.merged = True

    def cursor(self) -> _Conn:
        return self

    def copy(self, statement: str) -> _Copy:
        table = "alina_events_in" if self.staged else "events"
        assert statement.startswith(f"COPY {table} (run_id, kind, payload, created_at, event_id)")
        return _Copy(self.buffer)


class FakeStore:
    """Stands in for RunStore: commits COPY rows to ``rows``; can block (``gate``) or fail."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.copies = 0
        self.staged_copies = 0
        self.fail = False
        self.fail_on_commit = False
        self.lose_reply = False
        self.gate = asyncio.Event()
        self.gate.set()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Conn]:
        await self.gate.wait()
        if self.fail:
            raise StoreUnavailableError("cannot reach Postgres at postgresql://test (scripted)")
        yield _Conn(self)


def writer(store: Any, **kw: Any) -> EventWriter:
    kw.setdefault("retry_backoff_s", (0.01, 0.05))
    return EventWriter(store, **kw)


async def until(condition: Callable[[], bool], what: str, polls: int = 2000) -> None:
    """Yield to the event loop until ``condition()`` holds (bounded, so a bug fails, not hangs)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never reached: {what}")


def seqs(rows: list[tuple[Any, ...]]) -> list[int]:
    return [json.loads(r[2])["i"] for r in rows]


async def test_events_are_written_in_batches_in_order() -> None:
    from alina.monitoring.metrics import REGISTRY

    persisted = REGISTRY.get_sample_value("alina_events_persisted_total") or 0.0
    store = FakeStore()
    w = writer(store, batch_size=100, flush_interval_s=0.01)
    for i in range(1050):
        await w.emit("tick", {"i": i}, run_id="r1")
    await w.flush()
    assert seqs(store.rows) == list(range(1050))
    assert store.copies <= 1050 // 100 + 3  # batched, not one write per event
    run_id, kind, _, created_at, event_id = store.rows[0]
    assert (run_id, kind, created_at.tzinfo is not None) == ("r1", "tick", True)
    assert len({r[4] for r in store.rows}) == 1050 and len(event_id) == 36  # a UUID per event
    assert store.staged_copies == 0  # first writes take the plain COPY path
    assert w.written == 1050 and w.pending == 0
    assert REGISTRY.get_sample_value("alina_events_persisted_total") == persisted + 1050
    await w.close()


async def test_back_pressure_bounds_memory_and_never_drops() -> None:
    store = FakeStore()
    store.gate.clear()  # the database is slow: every write waits
    w = writer(store, max_queue=10, batch_size=5, flush_interval_s=0)
    accepted = 0

    async def produce() -> None:
        nonlocal accepted
        for i in range(40):
            await w.emit("tick", {"i": i})
            accepted += 1

    producer = asyncio.create_task(produce())
    await until(lambda: w.pending > 10, "queue full and a batch in flight")
    for _ in range(50):
        await asyncio.sleep(0)
    # emit waits for room: at most the queue plus one batch is held, and nothing is dropped
    assert not producer.done() and w.pending == accepted <= 10 + 5
    store.gate.set()
    await producer
    await w.close()
    assert seqs(store.rows) == list(range(40))


async def test_failed_writes_keep_events_and_flush_reports_them() -> None:
    store = FakeStore()
    store.fail = True
    w = writer(store, batch_size=10, flush_interval_s=0)
    for i in range(25):
        await w.emit("tick", {"i": i})
    with pytest.raises(StoreUnavailableError, match="cannot reach Postgres"):
        await w.flush()
    assert w.pending == 25 and store.rows == [] and w.last_error is not None
    store.fail = False
    await w.flush()
    assert w.pending == 0
    assert seqs(store.rows) == list(range(25)) and w.last_error is None
    await w.close()


async def test_a_lost_commit_is_retried_and_stored_once() -> None:
    store = FakeStore()
    store.fail_on_commit = True
    w = writer(store, batch_size=10, flush_interval_s=10)
    await w.emit("tick", {"i": 0})
    with pytest.raises(StoreUnavailableError):
        await w.flush()
    store.fail_on_commit = False
    await w.close()
    assert seqs(store.rows) == [0]  # a commit that raised is not counted as written
    assert store.staged_copies == 1  # the retry went through ON CONFLICT (event_id) DO NOTHING


async def test_a_batch_whose_commit_reply_was_lost_is_not_stored_twice() -> None:
    store = FakeStore()
    store.lose_reply = True
    w = writer(store, batch_size=10, flush_interval_s=10)
    for i in range(3):
        await w.emit("tick", {"i": i})
    with pytest.raises(StoreUnavailableError, match="reply lost"):
        await w.flush()
    assert w.pending == 3  # the writer cannot know the batch landed
    await w.close()
    assert seqs(store.rows) == [0, 1, 2] and w.pending == 0


async def test_emit_fails_fast_when_the_store_is_down_and_the_queue_is_full() -> None:
    store = FakeStore()
    store.fail = True
    w = writer(store, max_queue=5, batch_size=5, flush_interval_s=0)
    await w.emit("tick", {"i": 0})
    await until(lambda: w.last_error is not None, "worker failed")
    accepted = 1
    with pytest.raises(StoreUnavailableError, match="event not accepted: .* the last write failed"):
        for i in range(1, 100):
            await w.emit("tick", {"i": i})
            accepted += 1
    assert w.pending == accepted <= 5 + 5  # the queue plus the failed batch; the rest refused
    store.fail = False
    await w.close()
    assert seqs(store.rows) == list(range(accepted))


async def test_close_drains_everything_then_refuses_new_events() -> None:
    store = FakeStore()
    w = writer(store, batch_size=1000, flush_interval_s=60)  # the worker would wait a minute
    for i in range(7):
        await w.emit("tick", {"i": i})
    await w.close()
    assert seqs(store.rows) == list(range(7))
    with pytest.raises(RuntimeError, match="closed"):
        await w.emit("tick", {})


async def test_a_failed_close_can_be_retried() -> None:
    store = FakeStore()
    w = writer(store, flush_interval_s=60)
    await w.emit("tick", {"i": 0})
    store.fail = True
    with pytest.raises(StoreUnavailableError):
        await w.close()
    assert w.pending == 1
    store.fail = False
    await w.close()
    assert seqs(store.rows) == [0]


@pytest.mark.parametrize(
    ("kind", "payload", "match"),
    [
        ("", {}, "non-empty"),
        ("tick", {"x": {1, 2}}, "not JSON-serialisable"),
        ("tick", {"x": math.nan}, "not JSON-serialisable"),
        ("tick", {"x": "a\x00b"}, "NUL"),
    ],
)
async def test_bad_events_are_refused_at_emit(kind: str, payload: Any, match: str) -> None:
    w = writer(FakeStore())
    with pytest.raises(ValueError, match=match):
        await w.emit(kind, payload)
    assert w.pending == 0
    await w.close()


# -- real Postgres (integration) ---------------------------------------------------------------
def _payload(i: int) -> dict[str, Any]:
    return {"i": i, "h": hashlib.sha256(str(i).encode()).hexdigest()[:16], "text": f"event {i} ✓"}


def _checksum(payloads: list[dict[str, Any]]) -> str:
    canonical = sorted(json.dumps(p, sort_keys=True, ensure_ascii=False) for p in payloads)
    return hashlib.sha256("\n".join(canonical).encode()).hexdigest()


async def _stored(dsn: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT payload FROM events")
        return [row[0] for row in await cur.fetchall()]


@pytest.mark.integration
async def test_burst_of_10000_events_is_persisted_without_loss(fresh_pg_dsn: str) -> None:
    async with RunStore(fresh_pg_dsn) as store:
        w = EventWriter(store, max_queue=1000, batch_size=500, flush_interval_s=0.05)

        async def produce(start: int) -> None:
            for i in range(start, start + 1000):
                await w.emit("burst", _payload(i), run_id=f"run-{start // 1000}")

        await asyncio.gather(*(produce(s) for s in range(0, 10_000, 1000)))
        await w.close()
        assert w.written == 10_000
    stored = await _stored(fresh_pg_dsn)
    assert len(stored) == 10_000
    assert _checksum(stored) == _checksum([_payload(i) for i in range(10_000)])
    async with await psycopg.AsyncConnection.connect(fresh_pg_dsn) as conn:
        cur = await conn.execute(
            "SELECT count(DISTINCT run_id), count(*) FILTER (WHERE kind = 'burst') FROM events"
        )
        assert await cur.fetchone() == (10, 10_000)


@pytest.mark.integration
async def test_postgres_stopped_mid_burst_loses_nothing(
    infra_root: Path, free_port: Callable[[], int]
) -> None:
    service = PostgresService(data_dir=infra_root / "pg-writer", port=free_port(), fast=True)
    await asyncio.to_thread(service.start)
    try:
        store = RunStore(service.dsn, acquire_timeout=2.0)
        await store.open()
        w = EventWriter(
            store, max_queue=10_000, batch_size=500, flush_interval_s=0.05, retry_backoff_s=(0.1, 0.5)
        )
        for i in range(4000):
            await w.emit("burst", _payload(i))
        await until(lambda: w.written >= 2000, "first batches written", polls=4000)

        await asyncio.to_thread(service.stop)  # the server goes away in the middle of the burst
        for i in range(4000, 10_000):
            await w.emit("burst", _payload(i))
        with pytest.raises(StoreUnavailableError, match="cannot reach Postgres"):
            await w.flush()
        kept = w.pending
        assert kept > 0 and w.written + kept == 10_000

        await asyncio.to_thread(service.start)
        for _attempt in range(30):  # the pool reconnects; the caller retries flush
            try:
                await w.flush()
                break
            except StoreUnavailableError:
                await asyncio.sleep(0.5)
        await w.close()
        await store.close()
        stored = await _stored(service.dsn)
        assert len(stored) == 10_000 and w.pending == 0
        assert _checksum(stored) == _checksum([_payload(i) for i in range(10_000)])
    finally:
        await asyncio.to_thread(service.stop)


@pytest.mark.integration
async def test_a_team_run_logs_its_operational_events(fresh_pg_dsn: str) -> None:
    """Run start, every model call attempt (no message content) and run end, on real Postgres."""
    from alina.config import AlinaConfig
    from alina.team import TeamRunner
    from tests.unit.test_run_memory import TASK, trend_and_health

    async with RunStore(fresh_pg_dsn) as store:
        events = EventWriter(store)
        runner = TeamRunner(AlinaConfig(), sink=store, clients=trend_and_health(), events=events)
        try:
            r = await runner.run(TASK, run_id="ev-run")
        finally:
            await runner.close()
            await events.close()
    assert r.status == "completed", r.error
    async with await psycopg.AsyncConnection.connect(fresh_pg_dsn) as conn:
        cur = await conn.execute("SELECT kind, payload FROM events WHERE run_id = 'ev-run' ORDER BY id")
        rows = await cur.fetchall()
    kinds = [k for k, _ in rows]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    calls = [p for k, p in rows if k == "model_call"]
    assert len(calls) == r.model_calls + r.cached_calls > 0
    assert {c["agent"] for c in calls} == {"trader", "monitor", "alina"}
    assert all(c["outcome"] == "ok" and "content" not in c for c in calls)
    assert rows[-1][1]["status"] == "completed" and rows[-1][1]["turns"] == r.turns


async def test_a_store_that_is_down_never_fails_the_run() -> None:
    """An event log whose every emit fails: the run completes, the failure is logged once."""
    from alina.config import AlinaConfig
    from alina.team import TeamRunner
    from tests.unit.test_run_memory import TASK, trend_and_health

    class Broken:
        emitted = 0

        async def emit(self, *a: Any, **kw: Any) -> None:
            Broken.emitted += 1
            raise StoreUnavailableError("cannot reach Postgres (test)")

    runner = TeamRunner(AlinaConfig(), clients=trend_and_health(), events=Broken())  # type: ignore[arg-type]
    try:
        r = await runner.run(TASK)
    finally:
        await runner.close()
    assert r.status == "completed" and Broken.emitted > 2 and runner._events_warned
