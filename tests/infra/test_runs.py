"""RunStore on a real Postgres: round trip, idempotent messages, clear unavailability errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from alina.memory_store import RunStore, RunTotals, StoreUnavailableError
from alina.memory_store.runs import redact_dsn

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_run_round_trip(fresh_pg_dsn: str) -> None:
    run_id = uuid.uuid4().hex
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run(run_id, "say hello", {"model": "smollm2", "agents": ["trader"]})
        await store.add_message(run_id, 1, "user", "TextMessage", "say hello")
        await store.add_message(run_id, 2, "alina", "TextMessage", "hello", 12, 3, 41.5)
        await store.add_message(run_id, 2, "alina", "TextMessage", "DUPLICATE", 99, 99, 1.0)
        await store.add_message(run_id, 3, "trader", "ToolCallSummaryMessage", "[]")

        started = await store.get_run(run_id)
        assert started is not None
        assert started["status"] == "running" and started["finished_at"] is None

        await store.finish_run(run_id, RunTotals("completed", 2, 1, 0, 12, 3, 0.75, None))
        run = await store.get_run(run_id)

    assert run is not None
    assert run["id"] == run_id and run["task"] == "say hello"
    assert run["status"] == "completed" and run["finished_at"] is not None
    assert run["finished_at"] >= run["started_at"]
    assert run["config_json"] == {"model": "smollm2", "agents": ["trader"]}
    assert (run["turns"], run["model_calls"], run["tool_calls"]) == (2, 1, 0)
    assert (run["prompt_tokens"], run["completion_tokens"], run["wall_s"]) == (12, 3, 0.75)
    assert run["error"] is None
    messages = run["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert messages[1]["content"] == "hello"  # the duplicate seq was ignored
    assert (messages[1]["prompt_tokens"], messages[1]["latency_ms"]) == (12, 41.5)
    assert messages[0]["prompt_tokens"] is None


@pytest.mark.asyncio
async def test_list_runs_newest_first_and_failed_run(fresh_pg_dsn: str) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    async with RunStore(fresh_pg_dsn) as store:
        for i, run_id in enumerate(ids):
            await store.create_run(run_id, f"task {i}", {})
        await store.add_message(ids[0], 1, "user", "TextMessage", "x")
        await store.finish_run(ids[1], RunTotals("failed", 1, 1, 0, 5, 0, 1.0, error="timeout"))
        runs = await store.list_runs()
        limited = await store.list_runs(limit=2)
        assert await store.get_run("no-such-run") is None

    assert [r["id"] for r in runs] == list(reversed(ids))
    assert [r["id"] for r in limited] == [ids[2], ids[1]]
    by_id = {r["id"]: r for r in runs}
    assert by_id[ids[0]]["message_count"] == 1
    assert (by_id[ids[1]]["status"], by_id[ids[1]]["error"]) == ("failed", "timeout")
    assert "messages" not in by_id[ids[0]]


@pytest.mark.asyncio
async def test_finish_run_rejects_bad_status_and_unknown_run(fresh_pg_dsn: str) -> None:
    async with RunStore(fresh_pg_dsn) as store:
        with pytest.raises(ValueError, match="'done'"):
            await store.finish_run("x", RunTotals("done", 0, 0, 0, 0, 0, 0.0))
        with pytest.raises(LookupError, match="nope"):
            await store.finish_run("nope", RunTotals("stopped", 0, 0, 0, 0, 0, 0.0))


@pytest.mark.asyncio
async def test_open_migrates_and_reopen_is_harmless(fresh_pg_dsn: str) -> None:
    store = RunStore(fresh_pg_dsn)
    await store.open()
    await store.open()  # no-op
    await store.close()
    await store.close()  # no-op
    async with RunStore(fresh_pg_dsn) as again:
        assert await again.list_runs() == []


@pytest.mark.asyncio
async def test_unavailable_server(free_port: Callable[[], int]) -> None:
    port = free_port()  # nothing listens there
    dsn = f"postgresql://alina:s3cret-pw@127.0.0.1:{port}/alina"
    store = RunStore(dsn, connect_timeout=2)
    with pytest.raises(StoreUnavailableError) as info:
        await store.open()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "alina up" in message
    assert "s3cret-pw" not in message
    with pytest.raises(RuntimeError, match="not open"):
        await store.list_runs()


def test_redact_dsn() -> None:
    assert redact_dsn("postgresql://u:pw@h:5433/db") == "postgresql://u@h:5433/db"
    assert redact_dsn("host=h port=1 dbname=d user=u password=pw") == "postgresql://u@h:1/d"
