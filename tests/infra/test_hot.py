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
