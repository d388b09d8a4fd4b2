"""Redis hot state: written for real, and failing open when Redis is gone."""

from __future__ import annotations

import pytest

from alina.memory_store.hot import REDIS_UNAVAILABLE, HotState

pytestmark = pytest.mark.integration


async def test_run_status_round_trip_with_expiry(redis_service) -> None:
    hot = HotState(redis_service.url)
    try:
        await hot.set_run_status("r1", "running", "a task")
        await hot.set_run_status("r1", "completed")
        got = await hot.run_status("r1")
        assert got is not None and got["status"] == "completed" and got["task"] == "a task"
        ttl = await hot._redis.ttl("alina:run:r1")
        assert 0 < ttl <= 24 * 3600
        assert await hot._redis.get("alina:current_run") == "r1"
    finally:
        await hot.close()


async def test_redis_down_fails_open_and_is_counted(free_port) -> None:
    hot = HotState(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    before = REDIS_UNAVAILABLE._value.get()
    try:
        await hot.set_run_status("r2", "running")  # must not raise
        assert await hot.run_status("r2") is None
        assert await hot.ping() is False
    finally:
        await hot.close()
    assert REDIS_UNAVAILABLE._value.get() == before + 3


async def test_each_turn_keeps_the_runs_position_and_newest_messages_hot(redis_service) -> None:
    from alina.memory_store.checkpoints import MessageRow
    from alina.memory_store.hot import RECENT_CHARS, RECENT_MAX

    hot = HotState(redis_service.url)
    try:
        await hot.set_run_status("r3", "running", "a task")
        assert await hot.current_run() == "r3"
        seq = 0
        for turn in range(1, 9):  # 8 turns x 4 messages: more than RECENT_MAX
            rows = []
            for _ in range(4):
                seq += 1
                speaker = "trader" if turn % 2 else "monitor"
                rows.append(MessageRow(seq, speaker, "TextMessage", f"m{seq} " + "x" * 3000))
            await hot.record_turn("r3", turn, rows)
        status = await hot.run_status("r3")
        assert status is not None
        assert (status["status"], status["turn"], status["last_speaker"]) == ("running", "8", "monitor")
        recent = await hot.recent("r3")
        assert [m["seq"] for m in recent] == list(range(seq - RECENT_MAX + 1, seq + 1))
        assert all(len(m["content"]) == RECENT_CHARS for m in recent)
        assert 0 < await hot._redis.ttl("alina:run:r3:recent") <= 24 * 3600
        await hot.record_turn("r3", 9, [])  # a turn with no message moves the position only
        assert (await hot.run_status("r3") or {})["turn"] == "9"
        assert len(await hot.recent("r3")) == RECENT_MAX
    finally:
        await hot.close()


async def test_after_a_failure_redis_is_left_alone_for_a_while() -> None:
    """A server that hangs up on every connection: only the first call reaches it."""
    import asyncio

    accepted = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hot = HotState(f"redis://127.0.0.1:{port}/0", timeout_s=0.5, retry_after_s=60)
    before = REDIS_UNAVAILABLE._value.get()
    try:
        await hot.record_turn("r4", 0, [])
        first = accepted  # the client's own retries may connect more than once
        assert first >= 1
        for turn in range(1, 5):
            await hot.record_turn("r4", turn, [])
            assert await hot.recent("r4") == []
        assert accepted == first
        assert REDIS_UNAVAILABLE._value.get() == before + 9  # every skipped operation is counted
        hot._down_until = 0.0  # the pause is over: the next call tries again
        assert await hot.run_status("r4") is None
        assert accepted > first
    finally:
        await hot.close()
        server.close()
        await server.wait_closed()


async def test_a_team_run_keeps_its_live_context_in_redis(redis_service) -> None:
    """The run loop writes each turn to Redis: at the end Redis holds the run's position and
    exactly its newest messages (scripted models, real Redis)."""
    from alina.config import AlinaConfig
    from alina.memory_store.hot import RECENT_MAX
    from alina.team import TeamRunner
    from tests.unit.test_run_memory import TASK, trend_and_health

    hot = HotState(redis_service.url)
    runner = TeamRunner(AlinaConfig(), clients=trend_and_health(), hot=hot)
    try:
        r = await runner.run(TASK, run_id="hot-run")
        assert r.status == "completed", r.error
        status = await hot.run_status("hot-run")
        assert status is not None and status["status"] == "completed"
        assert status["last_speaker"] == "alina" and int(status["turn"]) >= 3
        recent = await hot.recent("hot-run")
        expected = [(e.seq, e.source) for e in r.events][-RECENT_MAX:]
        assert [(m["seq"], m["source"]) for m in recent] == expected
        assert recent[-1]["content"] == r.answer
    finally:
        await runner.close()
        await hot.close()
