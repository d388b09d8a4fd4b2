"""Model-response cache on a real Redis: hit, miss, invalidation on a prompt change, Redis down."""

from __future__ import annotations

from typing import Any

import pytest
from autogen_core.models import SystemMessage, UserMessage

from alina.models import Completion, JsonToolClient, ResilientClient
from alina.models._cache import CACHE_REQUESTS, ResponseCache

pytestmark = pytest.mark.integration


class CountingModel(JsonToolClient):
    """A provider double that counts how often it is really called (the cache is under test)."""

    provider = "counting"

    def __init__(self, **kw: Any) -> None:
        super().__init__(model="m", **kw)
        self.calls = 0

    async def _complete(self, chat: Any, *, schema: Any, max_tokens: int, deadline: float) -> Completion:
        self.calls += 1
        return Completion(text=f"answer {self.calls}", prompt_tokens=5, completion_tokens=2)

    def _count_text(self, text: str) -> int:
        return len(text.split())


def msgs(system: str = "You are the trader.", task: str = "BTC trend?") -> list[Any]:
    return [SystemMessage(content=system), UserMessage(content=task, source="user")]


def count(result: str) -> float:
    return CACHE_REQUESTS.labels(result)._value.get()


async def test_identical_calls_hit_and_different_calls_miss(redis_service) -> None:
    cache = ResponseCache(redis_service.url, ttl_s=60)
    model = CountingModel()
    client = ResilientClient("trader", model, cache=cache, prompt_version="v1")
    try:
        hits, misses = count("hit"), count("miss")
        first = await client.create(msgs())
        second = await client.create(msgs())
        assert (first.content, second.content) == ("answer 1", "answer 1")
        assert second.cached and not first.cached
        assert model.calls == 1
        await client.create(msgs(task="ETH trend?"))
        assert model.calls == 2
        assert (count("hit") - hits, count("miss") - misses) == (1, 2)
        key = cache.key(agent="trader", prompt_version="v1", client={}, messages=msgs())
        assert key.startswith("alina:llm:trader:v1:")
        ttl = await cache._redis.ttl(next(iter(await cache._redis.keys("alina:llm:trader:v1:*"))))
        assert 0 < ttl <= 60
    finally:
        await cache.invalidate("trader")
        await cache.close()


async def test_a_new_prompt_version_misses_and_invalidate_drops_old_entries(redis_service) -> None:
    cache = ResponseCache(redis_service.url, ttl_s=60)
    model = CountingModel()
    try:
        await ResilientClient("monitor", model, cache=cache, prompt_version="v1").create(msgs())
        await ResilientClient("monitor", model, cache=cache, prompt_version="v2").create(msgs())
        assert model.calls == 2  # same messages, new prompt version: not served from v1
        assert await cache.invalidate("monitor", "v1") == 1
        assert await cache._redis.keys("alina:llm:monitor:v1:*") == []
        assert len(await cache._redis.keys("alina:llm:monitor:v2:*")) == 1
    finally:
        await cache.invalidate("monitor")
        await cache.close()


async def test_sampling_parameters_and_model_are_part_of_the_key(redis_service) -> None:
    cache = ResponseCache(redis_service.url, ttl_s=60)
    a, b = CountingModel(max_tokens=10), CountingModel(max_tokens=20)
    try:
        await ResilientClient("trader", a, cache=cache).create(msgs())
        await ResilientClient("trader", b, cache=cache).create(msgs())
        assert (a.calls, b.calls) == (1, 1)
        hot = CountingModel(temperature=0.7)  # non-deterministic calls are never cached
        c = ResilientClient("trader", hot, cache=cache)
        await c.create(msgs())
        await c.create(msgs())
        assert hot.calls == 2
    finally:
        await cache.invalidate("trader")
        await cache.close()


async def test_redis_down_means_no_cache_not_an_error(free_port) -> None:
    cache = ResponseCache(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.3)
    model = CountingModel()
    client = ResilientClient("trader", model, cache=cache)
    before = count("unavailable")
    try:
        assert (await client.create(msgs())).content == "answer 1"
        assert (await client.create(msgs())).content == "answer 2"
        assert model.calls == 2
        assert count("unavailable") - before == 4  # two failed gets, two failed sets
    finally:
        await cache.close()


async def test_a_corrupt_entry_is_a_miss_that_is_dropped(redis_service) -> None:
    cache = ResponseCache(redis_service.url)
    model = CountingModel()
    client = ResilientClient("trader", model, cache=cache, prompt_version="corrupt-v1")
    before = count("corrupt")
    try:
        assert (await client.create(msgs())).content == "answer 1"
        keys = [k async for k in cache._redis.scan_iter(match="alina:llm:trader:corrupt-v1:*")]
        assert len(keys) == 1
        await cache._redis.set(keys[0], b"{not a result")
        assert (await client.create(msgs())).content == "answer 2"  # the model again, no error
        assert count("corrupt") - before == 1
        assert (await client.create(msgs())).content == "answer 2"  # re-cached
        assert model.calls == 2
    finally:
        await cache.invalidate("trader")
        await cache.close()
