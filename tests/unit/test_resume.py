"""Checkpoint and resume logic with scripted models and the in-process sink.

A run is cut the way a crash cuts it (the task is cancelled mid-turn, nothing is finished), or it
fails, and a NEW runner resumes it from the sink's last checkpoint. Postgres and a real model are
exercised by tests/e2e/test_resume_kill.py, which SIGKILLs real runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from autogen_core.models import CreateResult
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.config import AlinaConfig
from alina.memory_store.checkpoints import TurnCommit
from alina.models import ResilientClient
from alina.team import AlreadyCompleted, MemorySink, ResumeError, TeamRunner
from tests.scripted import INFO, call

TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"
NAMES = ("alina", "trader", "monitor", "optimizer", "selector")


class Scripted(ReplayChatCompletionClient):
    """Replays its script; when ``hang`` is set, the call blocks until cancelled (a crash point)."""

    def __init__(self, steps: list[Any], hang: asyncio.Event | None = None, fail: bool = False) -> None:
        super().__init__(steps, model_info=INFO)  # type: ignore[arg-type]
        self.hang = hang
        self.fail = fail
        self.seen: list[Any] = []

    async def create(self, messages: Any, *args: Any, **kwargs: Any) -> CreateResult:
        self.seen.append(list(messages))
        if self.fail:
            raise RuntimeError("scripted model crash")
        if self.hang is not None:
            self.hang.set()
            forever = asyncio.get_running_loop().create_future()
            token = kwargs.get("cancellation_token")
            if token is not None:
                token.link_future(forever)
            await forever
        return await super().create(messages, *args, **kwargs)


def clients(**overrides: Scripted) -> dict[str, Any]:
    scripts: dict[str, list[Any]] = {
        "trader": [call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
        "monitor": [call("system_health")],
        "alina": ["BTC/USDT fell over the last day; the system is healthy."],
    }
    made = {n: overrides.get(n) or Scripted(scripts.get(n, [])) for n in NAMES}
    return {n: ResilientClient(n, c, retries=0) for n, c in made.items()}  # type: ignore[arg-type]


async def crash_during_monitor_turn(sink: MemorySink) -> str:
    """Start a run and cut it while the monitor's model call is running (like SIGKILL: the
    run is never finished). Returns the run id."""
    started = asyncio.Event()
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=clients(monitor=Scripted([], hang=started)))
    run = asyncio.create_task(runner.run(TASK, run_id="r1"))
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)  # let the committer write turn 1
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    return "r1"


async def test_a_run_cut_mid_turn_resumes_from_its_last_checkpoint_without_loss_or_duplicates() -> None:
    sink = MemorySink()
    run_id = await crash_during_monitor_turn(sink)
    assert sink.runs[run_id]["status"] == "running"  # nobody finished it
    assert [c.turn for c in sink.commits] == [1]  # the trader's turn was committed, the cut one not
    kept = sink.messages(run_id)
    assert [m.source for m in kept if m.type == "ToolCallSummaryMessage"] == ["trader"]

    alina = Scripted(["BTC/USDT fell over the last day; the system is healthy."])
    resumed = await TeamRunner(AlinaConfig(), sink=sink, clients=clients(alina=alina)).resume(run_id)

    assert resumed.status == "completed", resumed.error
    assert resumed.resumed_from_turn == 1
    msgs = sink.messages(run_id)
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))  # nothing lost, nothing twice
    assert msgs[: len(kept)] == kept
    assert [m.source for m in msgs if m.type == "ToolCallSummaryMessage"] == ["trader", "monitor"]
    assert [r.seq for r in sink.routing(run_id)] == list(range(1, len(sink.routing(run_id)) + 1))
    # counters continue from the checkpoint: the whole run had 3 turns and 2 tool calls
    assert (resumed.turns, resumed.tool_calls) == (3, 2)
    assert sink.runs[run_id]["status"] == "completed" and sink.runs[run_id]["resumes"] == 1
    # the restored team state reached the model: ALINA's prompt holds the trader's report
    # from before the crash
    assert any("21,925.7" in str(m) for m in alina.seen[0])


async def test_a_failed_run_drops_the_cut_turns_rows_and_redoes_the_turn() -> None:
    sink = MemorySink()
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=clients(monitor=Scripted([], fail=True)))
    failed = await runner.run(TASK, run_id="r2")
    assert failed.status == "failed" and "scripted model crash" in (failed.error or "")
    assert [c.is_checkpoint for c in sink.commits] == [True, False]  # turn 1, then the cut turn's rows

    resumed = await TeamRunner(AlinaConfig(), sink=sink, clients=clients()).resume("r2")
    assert resumed.status == "completed", resumed.error
    msgs = sink.messages("r2")
    assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
    assert sum(m.type == "ToolCallSummaryMessage" and m.source == "monitor" for m in msgs) == 1


async def test_resume_refuses_unknown_and_completed_runs_and_needs_a_store() -> None:
    sink = MemorySink()
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=clients())
    done = await runner.run(TASK)
    assert done.status == "completed"
    with pytest.raises(AlreadyCompleted, match="already completed"):
        await runner.resume(done.run_id)
    with pytest.raises(ResumeError, match="no run with id 'nope'"):
        await runner.resume("nope")
    with pytest.raises(ResumeError, match="needs the run store"):
        await TeamRunner(AlinaConfig(), clients=clients()).resume(done.run_id)


async def test_a_run_cannot_be_resumed_twice_at_once() -> None:
    sink = MemorySink()
    run_id = await crash_during_monitor_turn(sink)
    async with sink.run_lock(run_id):  # another process holds it
        with pytest.raises(RuntimeError, match="being executed"):
            await TeamRunner(AlinaConfig(), sink=sink, clients=clients()).resume(run_id)


async def test_resume_uses_the_prompt_the_run_was_checkpointed_with() -> None:
    sink = MemorySink()
    run_id = await crash_during_monitor_turn(sink)
    first = sink.commits[0]
    monitor = next(p for p in first.prompts if p.agent == "monitor")
    rewritten = monitor.system + "\nAlways name the CPU load first."
    digest = hashlib.sha256(rewritten.encode()).hexdigest()[:12]
    first.prompts = [
        p if p.agent != "monitor" else type(p)("monitor", p.version + 1, digest, rewritten)
        for p in first.prompts
    ]
    seen = Scripted([call("system_health")])
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=clients(monitor=seen))
    result = await runner.resume(run_id)
    assert result.status == "completed", result.error
    system = seen.seen[0][0]
    assert system.content == rewritten  # the checkpointed text, not the file's
    assert runner.team.prompts["monitor"].version == monitor.version + 1
    later = [p for c in sink.commits[1:] for p in c.prompts if p.agent == "monitor"]
    assert later and all((p.digest, p.system) == (digest, rewritten) for p in later)


class BrokenSink(MemorySink):
    """Postgres goes away after the first turn."""

    async def commit_turn(self, commit: TurnCommit) -> None:
        if self.commits:
            raise ConnectionError("server closed the connection unexpectedly")
        await super().commit_turn(commit)

    @contextlib.asynccontextmanager
    async def run_lock(self, run_id: str) -> AsyncIterator[None]:
        yield


async def test_a_store_that_goes_away_fails_the_run_with_what_to_do_and_keeps_the_last_turn() -> None:
    sink = BrokenSink()
    states: list[tuple[bool, str]] = []
    config = AlinaConfig(resilience={"store_outage_s": 0.3})  # the outage outlasts the retries
    runner = TeamRunner(config, sink=sink, clients=clients(), on_store_state=lambda *s: states.append(s))
    r = await runner.run(TASK, run_id="r3")
    assert r.status == "failed"
    assert "turn not saved (server closed the connection unexpectedly)" in (r.error or "")
    assert "alina run --resume r3" in (r.error or "")
    assert [c.turn for c in sink.commits] == [1] and r.checkpoints == 1
    assert states == [(False, "server closed the connection unexpectedly")]  # never back


async def test_a_stop_request_ends_the_run_after_the_turn_in_flight_and_resume_finishes_it() -> None:
    from alina.team import STOP_REQUESTED

    sink = MemorySink()
    started = asyncio.Event()

    class StopsDuringTrader(Scripted):
        async def create(self, messages: Any, *args: Any, **kwargs: Any) -> CreateResult:
            started.set()
            await asyncio.sleep(0.05)  # the stop arrives while this turn's model call runs
            return await super().create(messages, *args, **kwargs)

    trader = StopsDuringTrader([call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')])
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=clients(trader=trader))
    task = asyncio.create_task(runner.run(TASK, run_id="s1"))
    await started.wait()
    runner.request_stop("shutdown")  # `alina serve` on SIGTERM
    stopped = await task
    assert stopped.status == "stopped" and stopped.stop_reason == STOP_REQUESTED + "shutdown"
    assert stopped.turns == 1 and stopped.checkpoints == 1  # the turn in flight was finished and saved
    resumed = await TeamRunner(AlinaConfig(), sink=sink, clients=clients()).resume("s1")
    assert resumed.status == "completed" and resumed.resumed_from_turn == 1
    seqs = [m.seq for m in sink.messages("s1")]
    assert seqs == list(range(1, len(seqs) + 1))
