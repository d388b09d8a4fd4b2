"""TurnCommitter: a store outage is ridden out (turns queue in order, with back pressure, and are
retried), the store's state is reported through on_store_state, and an outage longer than the
bound fails the run as before (tests/unit/test_resume.py). Postgres itself: tests/infra/test_pg_outage.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from alina.config import AlinaConfig
from alina.memory_store.checkpoints import MessageRow, TurnCommit
from alina.memory_store.runs import StoreUnavailableError
from alina.team import MemorySink, TeamRunner
from alina.team._committer import TurnCommitter
from tests.unit.test_resume import TASK, clients


class FlakySink(MemorySink):
    """Refuses commits (as RunStore does when Postgres is away) while ``down``, or for the next
    ``fail_next`` attempts; counts every attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.fail_next = 0
        self.attempts = 0

    async def commit_turn(self, commit: TurnCommit) -> None:
        self.attempts += 1
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise StoreUnavailableError("cannot reach Postgres at postgresql://x (scripted)")
        await super().commit_turn(commit)


def commit(turn: int) -> TurnCommit:
    return TurnCommit("r", turn, [MessageRow(turn, "trader", "TextMessage", f"m{turn}")], [], {"s": turn}, [])


async def until(condition: Any, what: str, polls: int = 2000) -> None:
    for _ in range(polls):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never reached: {what}")


async def test_a_run_rides_out_a_store_outage_and_reports_it() -> None:
    states: list[tuple[bool, str]] = []

    class GoesAway(FlakySink):
        async def commit_turn(self, c: TurnCommit) -> None:
            if c.turn == 2 and not states:
                self.fail_next = 3  # Postgres away from the second turn's commit on, for 3 tries
            await super().commit_turn(c)

    sink = GoesAway()
    runner = TeamRunner(
        AlinaConfig(), sink=sink, clients=clients(), on_store_state=lambda *s: states.append(s)
    )
    r = await runner.run(TASK, run_id="out1")
    assert r.status == "completed" and r.error is None
    assert [c.turn for c in sink.commits] == [1, 2, 3] and r.checkpoints == 3
    assert [m.seq for m in sink.messages("out1")] == list(range(1, len(r.events) + 1))
    assert [(m.seq, m.content) for m in sink.messages("out1")] == [(e.seq, e.content) for e in r.events]
    assert states == [(False, "cannot reach Postgres at postgresql://x (scripted)"), (True, "")]
    assert sink.attempts == 3 + 3  # every turn once, plus the three refused tries
    assert sink.runs["out1"]["status"] == "completed"


async def test_turns_queue_in_order_with_back_pressure_while_the_store_is_away() -> None:
    sink = FlakySink()
    sink.down = True
    states: list[tuple[bool, str]] = []
    c = TurnCommitter(
        sink, outage_s=60, depth=2, backoff_s=(0.01, 0.05), on_store_state=lambda *s: states.append(s)
    )
    await c.put(commit(1))
    await until(lambda: sink.attempts >= 2, "the first commit is being retried")
    await c.put(commit(2))
    await c.put(commit(3))  # the queue (depth 2) is full now
    blocked = asyncio.create_task(c.put(commit(4)))
    for _ in range(50):
        await asyncio.sleep(0)
    assert not blocked.done() and sink.commits == []  # the run waits; nothing dropped
    assert states == [(False, "cannot reach Postgres at postgresql://x (scripted)")]
    sink.down = False
    await blocked
    await c.close()
    assert [x.turn for x in sink.commits] == [1, 2, 3, 4] and c.written == 4
    assert states[-1] == (True, "") and len(states) == 2


async def test_an_error_that_is_not_an_outage_is_not_retried() -> None:
    class Bad(MemorySink):
        async def commit_turn(self, commit: TurnCommit) -> None:
            raise ValueError("column does not exist")

    states: list[tuple[bool, str]] = []
    c = TurnCommitter(Bad(), outage_s=60, on_store_state=lambda *s: states.append(s))
    await c.put(commit(1))
    with pytest.raises(ValueError, match="column does not exist"):
        await c.close()
    assert c.retries == 0 and c.failed and states == [(False, "column does not exist")]


async def test_a_failing_callback_does_not_stop_the_commits() -> None:
    def broken(ok: bool, reason: str) -> None:
        raise RuntimeError("callback bug")

    sink = FlakySink()
    sink.fail_next = 2
    c = TurnCommitter(sink, outage_s=60, backoff_s=(0.01, 0.05), on_store_state=broken)
    await c.put(commit(1))
    await c.close()
    assert [x.turn for x in sink.commits] == [1] and c.retries == 2
