"""The governor's process-local cap: concurrency, priority order, run-time limit, wiring.

Concurrency is measured by a counter inside the fake model (calls running at once), never by
time. The Redis leases are tested on a real Redis in tests/infra/test_governor_redis.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from autogen_core.models import CreateResult, LLMMessage, RequestUsage, UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.config import AlinaConfig, ModelConfig
from alina.models import Governor, ResilientClient, build_agent_client, governor_for, priority_for
from alina.models._governor import reset_governors
from alina.monitoring.metrics import REGISTRY
from tests.scripted import INFO

ASK = [UserMessage(content="hi", source="user")]


class Gate(ReplayChatCompletionClient):
    """A model whose calls run until released; counts how many run at once (and the maximum)."""

    def __init__(self, *, hold: bool = True) -> None:
        super().__init__([], model_info=INFO)  # type: ignore[arg-type]
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []  # the callers, in the order they were admitted
        self.running_at_start: list[int] = []  # calls running (this one included) at each start
        self.release = asyncio.Event()
        if not hold:
            self.release.set()

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.running_at_start.append(self.running)
        self.started.append(str(messages[-1].content))
        try:
            await self.release.wait()
            await asyncio.sleep(0)  # let the others pile up behind the cap
        finally:
            self.running -= 1
        return CreateResult(
            finish_reason="stop",
            content="ok",
            usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
            cached=False,
        )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_twelve_callers_never_exceed_the_cap() -> None:
    model = Gate(hold=False)
    gov = Governor(4, name="t12")
    clients = [ResilientClient(f"agent{i}", model, governor=gov) for i in range(12)]
    results = await asyncio.gather(*(c.create(ASK) for c in clients))
    assert len(results) == 12
    assert model.max_running == 4  # reached, never exceeded
    assert gov.in_flight == 0 and gov.waiting == 0


async def test_waiting_callers_are_admitted_by_priority_class_then_fifo() -> None:
    model = Gate()
    gov = Governor(1, name="tprio")
    holder = asyncio.create_task(ResilientClient("optimizer", model, governor=gov).create(ASK))
    await settle()
    order = ["optimizer", "alina", "monitor", "trader", "risk", "selector", "trader", "optimizer"]
    tasks = []
    for i, agent in enumerate(order):
        msg = [UserMessage(content=f"{agent}#{i}", source="user")]
        tasks.append(asyncio.create_task(ResilientClient(agent, model, governor=gov).create(msg)))
        await settle()  # enqueue in this order
    assert gov.waiting == len(order) and model.running == 1
    model.release.set()
    await asyncio.gather(holder, *tasks)
    assert model.started[1:] == [
        "risk#4",
        "trader#3",
        "trader#6",
        "monitor#2",
        "alina#1",
        "selector#5",
        "optimizer#0",
        "optimizer#7",
    ]
    assert model.max_running == 1


async def test_set_limit_raises_and_lowers_the_cap_at_run_time() -> None:
    model = Gate()
    gov = Governor(1, name="tlimit")
    tasks = [asyncio.create_task(ResilientClient("alina", model, governor=gov).create(ASK)) for _ in range(6)]
    await settle()
    assert (model.running, gov.waiting) == (1, 5)
    gov.set_limit(3)  # raising admits waiters at once
    await settle()
    assert (model.running, gov.in_flight, gov.waiting) == (3, 3, 3)
    assert REGISTRY.get_sample_value("alina_governor_limit", {"governor": "tlimit"}) == 3
    gov.set_limit(1)  # lowering lets the 3 running finish, then admits one at a time
    model.release.set()
    await asyncio.gather(*tasks)
    assert model.running_at_start == [1, 2, 3, 1, 1, 1]  # after lowering: alone each time
    with pytest.raises(ValueError):
        gov.set_limit(0)


async def test_a_cancelled_waiter_leaves_the_queue_and_frees_nothing_it_did_not_hold() -> None:
    model = Gate()
    gov = Governor(1, name="tcancel")
    first = asyncio.create_task(ResilientClient("alina", model, governor=gov).create(ASK))
    waiter = asyncio.create_task(ResilientClient("trader", model, governor=gov).create(ASK))
    await settle()
    waiter.cancel()
    await settle()
    assert (gov.in_flight, gov.waiting) == (1, 0)
    model.release.set()
    await first
    assert gov.in_flight == 0


async def test_queue_wait_and_in_flight_are_exported() -> None:
    gov = Governor(2, name="tmetrics")
    before = REGISTRY.get_sample_value("alina_model_queue_wait_seconds_count", {"priority": "trading"}) or 0
    await ResilientClient("trader", Gate(hold=False), governor=gov).create(ASK)
    after = REGISTRY.get_sample_value("alina_model_queue_wait_seconds_count", {"priority": "trading"})
    assert after == before + 1
    assert REGISTRY.get_sample_value("alina_model_calls_in_flight", {"governor": "tmetrics"}) == 0


def test_agents_map_to_priority_classes() -> None:
    assert [priority_for(a) for a in ("trader", "monitor", "alina", "selector", "optimizer", "risk")] == [
        "trading",
        "monitoring",
        "chat",
        "chat",
        "optimization",
        "risk",
    ]
    assert ResilientClient("risk", Gate(), priority=None).priority == "risk"
    assert ResilientClient("alina", Gate(), priority="risk").priority == "risk"


def test_one_governor_per_process_per_model_server() -> None:
    reset_governors()
    cfg = AlinaConfig()
    cfg.team.governor_lease_ttl_s = 0  # no Redis in unit tests
    remote = ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1", model="x")
    cfg.models = {
        "embedded": remote,
        "other": remote.model_copy(update={"base_url": "http://127.0.0.1:8/v1"}),
    }
    a = build_agent_client(cfg, "trader")
    b = build_agent_client(cfg, "alina", label="selector")
    assert a.governor is b.governor is governor_for(cfg, "embedded")  # shared across agents and teams
    assert governor_for(cfg, "other") is not a.governor  # another server, another cap
    assert a.governor.limit == cfg.team.max_concurrent_model_calls and a.governor.redis_url is None
    assert (a.priority, b.priority) == ("trading", "chat")
    reset_governors()
