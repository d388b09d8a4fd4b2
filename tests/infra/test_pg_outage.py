"""Postgres goes away mid-run (issue 10 item 6), on a real server of the test's own.

A scripted team run on a real RunStore + EventWriter (with a spool): the server is stopped after
the first turn is saved, the run takes its remaining turns while it is down (turn commits queue
and are retried, events go to the spool file), then the server is started again. The run
completes; every message is stored once with seqs 1..n; every event the run emitted is stored
once, in emission order; on_store_state saw False, then True.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alina.config import ORCHESTRATOR, AlinaConfig
from alina.memory_store.checkpoints import TurnCommit
from alina.memory_store.runs import RunStore
from alina.memory_store.writer import EventWriter
from alina.runtime.services import PostgresService
from alina.team import RunEvent, TeamRunner
from tests.scripted import call
from tests.unit.test_resume import TASK, Scripted, clients

pytestmark = pytest.mark.integration


class RecordingStore(RunStore):
    """A RunStore that remembers which turns it committed."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.committed: list[int] = []

    async def commit_turn(self, commit: TurnCommit) -> None:
        await super().commit_turn(commit)
        self.committed.append(commit.turn)


class RecordingWriter(EventWriter):
    """An EventWriter that remembers every event it accepted, in order."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.emitted: list[tuple[str | None, str, dict[str, Any]]] = []

    async def emit(self, kind: str, payload: Any = None, *, run_id: str | None = None) -> None:
        await super().emit(kind, payload, run_id=run_id)
        self.emitted.append((run_id, kind, dict(payload or {})))


class Gated(Scripted):
    """Replays its script, but its first call waits for ``gate`` (``called`` is set first)."""

    def __init__(self, steps: list[Any], gate: asyncio.Event) -> None:
        super().__init__(steps)
        self.gate, self.called = gate, asyncio.Event()

    async def create(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        self.called.set()
        await self.gate.wait()
        return await super().create(messages, *args, **kwargs)


async def until(condition: Callable[[], bool], what: str, polls: int = 1200) -> None:
    """Poll ``condition`` (bounded, so a bug fails instead of hanging)."""
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached: {what}")


async def test_a_run_survives_postgres_going_away_and_loses_nothing(
    infra_root: Path, free_port: Callable[[], int]
) -> None:
    service = PostgresService(data_dir=infra_root / "pg-outage", port=free_port(), fast=True)
    await asyncio.to_thread(service.start)
    try:
        store = RecordingStore(service.dsn, acquire_timeout=2.0)
        await store.open()
        events = RecordingWriter(
            store, flush_interval_s=0.05, retry_backoff_s=(0.1, 0.5), spool_dir=infra_root / "spool-outage"
        )
        stopped = asyncio.Event()  # the monitor's turn (the second) starts once Postgres is down
        monitor = Gated([call("system_health")], stopped)
        states: list[tuple[bool, str]] = []
        seen: list[RunEvent] = []
        runner = TeamRunner(
            AlinaConfig(),
            sink=store,
            clients=clients(monitor=monitor),
            events=events,
            on_event=seen.append,
            on_store_state=lambda *s: states.append(s),
        )
        run = asyncio.create_task(runner.run(TASK, run_id="outage"))

        await until(lambda: monitor.called.is_set() and store.committed == [1], "turn 1 saved")
        await until(lambda: events.pending == 0, "the events so far written")
        await asyncio.to_thread(service.stop)  # Postgres goes away mid-run
        stopped.set()
        # The run goes on: the monitor's and ALINA's turns are taken while the server is down.
        await until(lambda: any(e.source == ORCHESTRATOR for e in seen), "the run's last turn")
        await until(lambda: bool(states) and events.spool_path is not None, "outage noticed, events spooled")
        assert states[0][0] is False and "cannot reach Postgres" in states[0][1]
        assert store.committed == [1] and not run.done()  # turns 2 and 3 wait, in order
        spool = events.spool_path
        await asyncio.to_thread(service.start)  # Postgres is back

        r = await asyncio.wait_for(run, 120)
        await runner.close()
        await events.close()
        await store.close()
        assert r.status == "completed", r.error
        assert store.committed == [1, 2, 3] and r.checkpoints == 3
        assert [s[0] for s in states] == [False, True]
        assert spool is not None and not spool.exists()  # flushed and removed

        async with await psycopg.AsyncConnection.connect(service.dsn) as conn:
            cur = await conn.execute(
                "SELECT seq, source, type, content FROM messages WHERE run_id = 'outage' ORDER BY seq"
            )
            messages = await cur.fetchall()
            cur = await conn.execute("SELECT status, turns FROM runs WHERE id = 'outage'")
            run_row = await cur.fetchone()
            cur = await conn.execute("SELECT run_id, kind, payload, event_id FROM events ORDER BY id")
            stored = await cur.fetchall()
        assert [m[0] for m in messages] == list(range(1, len(r.events) + 1))
        assert messages == [(e.seq, e.source, e.type, e.content) for e in r.events]
        assert run_row == ("completed", r.turns)
        # Every event once, in the order the run emitted them (the spooled ones in their place).
        assert [(run_id, kind, payload) for run_id, kind, payload, _ in stored] == [
            (run_id, kind, _json_roundtrip(payload)) for run_id, kind, payload in events.emitted
        ]
        assert len({row[3] for row in stored}) == len(stored)
        kinds = [k for _, k, _ in events.emitted]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and "model_call" in kinds
    finally:
        await asyncio.to_thread(service.stop)


def _json_roundtrip(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as jsonb gives it back (tuples become lists, ...)."""
    import json

    return json.loads(json.dumps(payload))
