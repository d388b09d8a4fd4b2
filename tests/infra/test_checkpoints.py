"""Turn commits, resume points and run locks on a real Postgres (migrations 0005 + 0007)."""

from __future__ import annotations

import uuid

import pytest

from alina.memory_store import RunBusyError, RunStore, RunTotals
from alina.memory_store.checkpoints import MessageRow, PromptRef, RoutingRow, TurnCommit

pytestmark = pytest.mark.integration

PROMPT = PromptRef("trader", 2, "aaaaaaaaaaaa", "You are the trader.")


def turn(run_id: str, n: int, seqs: range, *, state: bool = True, prompt: PromptRef = PROMPT) -> TurnCommit:
    return TurnCommit(
        run_id,
        n,
        [MessageRow(s, "trader", "TextMessage", f"message {s}") for s in seqs],
        [RoutingRow(n, "trader", "rules", 0.9, ("trader", "monitor"), "keyword")],
        {"type": "TeamState", "agent_states": {"turn": n}} if state else {},
        [prompt] if state else [],
        {
            "turns": n,
            "model_calls": n,
            "tool_calls": 0,
            "prompt_tokens": 10 * n,
            "completion_tokens": n,
            "message_count": seqs[-1],
            "routing_count": n,
            "answer": "",
        },
    )


async def test_turns_commit_atomically_and_the_resume_point_is_the_last_one(fresh_pg_dsn: str) -> None:
    run_id = uuid.uuid4().hex
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run(run_id, "task", {})
        await store.commit_turn(turn(run_id, 1, range(1, 3)))
        await store.commit_turn(turn(run_id, 2, range(3, 5)))
        await store.commit_turn(turn(run_id, 2, range(3, 5)))  # a replayed commit is a no-op
        point = await store.resume_point(run_id)
        assert point is not None
        assert (point.task, point.status, point.turn, point.resumes) == ("task", "running", 2, 0)
        assert point.team_state == {"type": "TeamState", "agent_states": {"turn": 2}}
        assert point.prompts == {"trader": PROMPT}  # the text comes back from prompt_versions
        assert point.position["message_count"] == 4
        run = await store.get_run(run_id)
        assert run is not None and [m["seq"] for m in run["messages"]] == [1, 2, 3, 4]
        assert (run["turns"], run["prompt_tokens"]) == (2, 20)  # progress is visible while running
        assert await store.resume_point("unknown") is None


async def test_reopen_drops_the_rows_of_a_cut_turn_and_counts_the_resume(fresh_pg_dsn: str) -> None:
    run_id = uuid.uuid4().hex
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run(run_id, "task", {})
        await store.commit_turn(turn(run_id, 1, range(1, 3)))
        await store.commit_turn(turn(run_id, 2, range(3, 6), state=False))  # cut turn: rows only
        await store.finish_run(run_id, RunTotals("failed", 1, 1, 0, 10, 1, 1.0, "boom"))
        point = await store.resume_point(run_id)
        assert point is not None and point.turn == 1 and point.status == "failed"
        await store.reopen_run(run_id)
        run = await store.get_run(run_id)
        assert run is not None
        assert [m["seq"] for m in run["messages"]] == [1, 2]
        assert (run["status"], run["resumes"], run["error"], run["finished_at"]) == ("running", 1, None, None)


async def test_a_run_before_its_first_checkpoint_resumes_from_its_task(fresh_pg_dsn: str) -> None:
    run_id = uuid.uuid4().hex
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run(run_id, "the task", {})
        point = await store.resume_point(run_id)
        assert point is not None and (point.turn, point.team_state, point.prompts) == (0, None, {})


async def test_a_prompt_changed_without_a_version_bump_keeps_the_first_text_and_warns(
    fresh_pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = uuid.uuid4().hex
    edited = PromptRef("trader", 2, "bbbbbbbbbbbb", "You are the trader. Edited.")
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run(run_id, "task", {})
        await store.commit_turn(turn(run_id, 1, range(1, 2)))
        await store.commit_turn(turn(run_id, 2, range(2, 3), prompt=edited))
        point = await store.resume_point(run_id)
    assert "changed without a version bump" in caplog.text
    # the checkpoint names digest b..., whose text is not stored under v2: resume uses the file's
    assert point is not None and point.prompts == {}


async def test_the_run_lock_is_exclusive_and_shows_interrupted_runs(fresh_pg_dsn: str) -> None:
    run_id = uuid.uuid4().hex
    async with RunStore(fresh_pg_dsn) as a, RunStore(fresh_pg_dsn) as b:
        await a.create_run(run_id, "task", {})
        assert (await b.get_run(run_id) or {})["interrupted"] is True  # running, nobody holds it
        async with a.run_lock(run_id):
            with pytest.raises(RunBusyError, match="another alina process"):
                async with b.run_lock(run_id):
                    pass
            rows = {r["id"]: r for r in await b.list_runs()}
            assert rows[run_id]["interrupted"] is False  # a live process holds it
        async with b.run_lock(run_id):  # released: the other store can take it
            pass
        await a.finish_run(run_id, RunTotals("completed", 1, 1, 0, 1, 1, 1.0))
        assert (await b.get_run(run_id) or {})["interrupted"] is False
