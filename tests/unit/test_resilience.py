"""ResilientClient: every failure class gets its own action, counted in metrics and call records.

Scripted models only: a slow model is a ChatCompletionClient that sleeps longer than its timeout
(so every attempt times out, whatever the machine's speed); the others raise the error class
under test. Nothing here asserts wall-clock times.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    LLMMessage,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import FunctionTool
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.models import (
    CallRecord,
    Completion,
    ContextOverflowError,
    JsonToolClient,
    MalformedOutputError,
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
    ModelUnreachableError,
    RealModelCallBlocked,
    ResilientClient,
    allow_model_requests,
)
from alina.monitoring.metrics import REGISTRY
from tests.scripted import INFO

ASK = [UserMessage(content="What is the BTC price?", source="user")]


class Scripted(ReplayChatCompletionClient):
    """A model that plays ``steps`` in order: an exception class/instance is raised, ``"slow"``
    sleeps past ``timeout_s`` (and times out), anything else is the answer text."""

    def __init__(self, name: str, steps: Sequence[Any], timeout_s: float = 0.05) -> None:
        super().__init__([], model_info=INFO)  # type: ignore[arg-type]
        self.provider, self.model = "scripted", name
        self.steps = list(steps)
        self.timeout_s = timeout_s
        self.seen: list[list[LLMMessage]] = []  # the messages of every call

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        self.seen.append(list(messages))
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]  # the last step repeats
        if step == "slow":
            try:
                async with asyncio.timeout(self.timeout_s):
                    await asyncio.sleep(3600)
            except TimeoutError:
                raise ModelTimeoutError(f"{self.model} did not answer within {self.timeout_s}s") from None
        if isinstance(step, type) and issubclass(step, BaseException) or isinstance(step, BaseException):
            raise step
        usage = RequestUsage(prompt_tokens=7, completion_tokens=3)
        return CreateResult(finish_reason="stop", content=str(step), usage=usage, cached=False)

    @property
    def attempts(self) -> int:
        return len(self.seen)


def metric(outcome: str, agent: str) -> float:
    return sum(
        REGISTRY.get_sample_value(
            "alina_model_calls_total",
            {"agent": agent, "provider": "scripted", "model": m, "outcome": outcome},
        )
        or 0.0
        for m in ("primary", "fallback")
    )


OUTCOMES = ("ok", "timeout", "unreachable", "malformed", "repaired", "overflow", "fallback", "exhausted")


def counts(agent: str) -> Callable[[], dict[str, float]]:
    """A function giving how much each outcome's counter grew since this call."""
    before = {o: metric(o, agent) for o in OUTCOMES}
    return lambda: {o: metric(o, agent) - before[o] for o in OUTCOMES if metric(o, agent) != before[o]}


async def test_slow_model_two_retries_then_slow_fallback_then_exhausted() -> None:
    primary, fallback = Scripted("primary", ["slow"]), Scripted("fallback", ["slow"])
    records: list[CallRecord] = []
    exhausted: list[tuple[str, str, int]] = []

    async def on_exhausted(agent: str, reason: str) -> None:
        exhausted.append((agent, reason, len(records)))

    grew = counts("t_slow")
    client = ResilientClient(
        "t_slow", primary, retries=2, fallback=fallback, listener=records.append, on_exhausted=on_exhausted
    )
    with pytest.raises(ModelUnavailableError) as info:
        await client.create(ASK)

    assert (primary.attempts, fallback.attempts) == (3, 1)  # the call + 2 retries, then the fallback once
    assert [(r.model, r.outcome) for r in records] == [
        ("primary", "timeout"),
        ("primary", "timeout"),
        ("primary", "timeout"),
        ("fallback", "timeout"),
        ("primary", "exhausted"),
    ]
    assert grew() == {"timeout": 4, "exhausted": 1}
    # on_exhausted ran once, after every attempt was recorded and before the error was raised
    assert len(exhausted) == 1 and exhausted[0][0] == "t_slow" and exhausted[0][2] == len(records)
    reason = exhausted[0][1]
    assert "after 2 retries" in reason and "fallback scripted:fallback" in reason, reason
    assert str(info.value) == reason
    assert isinstance(info.value, ModelError)


async def test_unreachable_server_goes_to_the_fallback_at_once() -> None:
    primary = Scripted("primary", [ModelUnreachableError("connection refused")])
    fallback = Scripted("fallback", ["from the fallback"])
    records: list[CallRecord] = []
    grew = counts("t_down")
    client = ResilientClient("t_down", primary, retries=2, fallback=fallback, listener=records.append)
    result = await client.create(ASK)
    assert result.content == "from the fallback"
    assert primary.attempts == 1  # no retry of a dead server
    assert [r.outcome for r in records] == ["unreachable", "fallback"]
    assert grew() == {"unreachable": 1, "fallback": 1}


async def test_unreachable_without_fallback_is_exhausted_and_a_sync_callback_runs() -> None:
    primary = Scripted("primary", [ModelUnreachableError("connection refused")])
    called: list[tuple[str, str]] = []
    client = ResilientClient("t_alone", primary, retries=2, on_exhausted=lambda a, r: called.append((a, r)))
    with pytest.raises(ModelUnavailableError, match="no fallback configured"):
        await client.create(ASK)
    assert primary.attempts == 1
    assert len(called) == 1 and "connection refused" in called[0][1]


async def test_malformed_output_gets_one_repair_with_the_parse_error() -> None:
    primary = Scripted("primary", [MalformedOutputError("model output is not JSON (Expecting value)"), "ok!"])
    records: list[CallRecord] = []
    client = ResilientClient("t_repair", primary, retries=2, listener=records.append)
    assert (await client.create(ASK)).content == "ok!"
    assert [r.outcome for r in records] == ["malformed", "repaired"]
    note = primary.seen[1][-1]
    assert isinstance(note, SystemMessage) and "Expecting value" in note.content
    assert primary.seen[1][:-1] == ASK  # the history itself is unchanged


async def test_malformed_twice_is_not_retried_blindly_but_falls_back() -> None:
    primary = Scripted("primary", [MalformedOutputError("truncated JSON")])
    fallback = Scripted("fallback", ["fine"])
    records: list[CallRecord] = []
    client = ResilientClient("t_bad", primary, retries=2, fallback=fallback, listener=records.append)
    assert (await client.create(ASK)).content == "fine"
    assert primary.attempts == 2  # the call and its one repair
    assert [r.outcome for r in records] == ["malformed", "malformed", "fallback"]


async def test_context_overflow_trims_the_oldest_history_once() -> None:
    history: list[LLMMessage] = [SystemMessage(content="You are the trader.")]
    for i in range(3):
        history += [
            UserMessage(content=f"question {i}", source="user"),
            AssistantMessage(content=f"answer {i}", source="trader"),
        ]
    history.append(UserMessage(content="latest question", source="user"))
    primary = Scripted("primary", [ContextOverflowError("exceed context window"), "short enough"])
    records: list[CallRecord] = []
    client = ResilientClient("t_long", primary, retries=2, listener=records.append)
    assert (await client.create(history)).content == "short enough"
    assert [r.outcome for r in records] == ["overflow", "ok"]
    trimmed = primary.seen[1]
    assert trimmed[0] == history[0] and trimmed[-1] == history[-1]  # system prompt and latest kept
    assert len(trimmed) == 1 + 4 and "question 0" not in str(trimmed)  # oldest 3 of 7 dropped


async def test_overflow_that_trimming_does_not_fix_goes_to_the_fallback() -> None:
    primary = Scripted("primary", [ContextOverflowError("too long")])
    fallback = Scripted("fallback", ["bigger context"])
    records: list[CallRecord] = []
    client = ResilientClient("t_long2", primary, fallback=fallback, listener=records.append)
    two = [UserMessage(content="a", source="user"), UserMessage(content="b", source="user")]
    assert (await client.create(two)).content == "bigger context"
    assert [r.outcome for r in records] == ["overflow", "overflow", "fallback"]


async def test_blocked_real_requests_are_not_sent_to_the_fallback() -> None:
    primary = Scripted("primary", [RealModelCallBlocked("blocked")])
    fallback = Scripted("fallback", ["never"])
    with pytest.raises(RealModelCallBlocked):
        await ResilientClient("t_blocked", primary, fallback=fallback).create(ASK)
    assert fallback.attempts == 0


async def test_a_failing_callback_does_not_hide_the_model_failure() -> None:
    def broken(agent: str, reason: str) -> None:
        raise RuntimeError("safe mode switch broke")

    client = ResilientClient("t_cb", Scripted("primary", ["slow"]), retries=0, on_exhausted=broken)
    with pytest.raises(ModelUnavailableError):
        await client.create(ASK)


class BadJsonOnce(JsonToolClient):
    """A provider double whose first tool call is cut-off JSON (what the repair must fix)."""

    provider = "double"

    def __init__(self) -> None:
        super().__init__(model="m")
        self.chats: list[list[dict[str, str]]] = []

    async def _complete(self, chat: Any, *, schema: Any, max_tokens: int, deadline: float) -> Completion:
        self.chats.append(chat)
        cut, whole = '{"tool": "get_price", "argu', '{"tool": "get_price", "arguments": {}}'
        text = cut if len(self.chats) == 1 else whole
        return Completion(text=text, prompt_tokens=5, completion_tokens=5)

    def _count_text(self, text: str) -> int:
        return len(text.split())


async def test_a_cut_off_tool_call_is_repaired_through_the_real_protocol() -> None:
    def get_price(symbol: str = "BTC/USDT") -> str:
        """Latest price of a symbol."""
        return "1"

    model = BadJsonOnce()
    records: list[CallRecord] = []
    client = ResilientClient("t_proto", model, listener=records.append)
    with allow_model_requests():  # a double, not a real model
        result = await client.create(ASK, tools=[FunctionTool(get_price, description="Latest price.")])
    assert isinstance(result.content, list) and result.content[0].name == "get_price"
    assert [r.outcome for r in records] == ["malformed", "repaired"]
    assert "not JSON" in "\n".join(m["content"] for m in model.chats[1])
