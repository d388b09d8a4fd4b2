"""The embedded model's deadline holds on grammar (tool) turns too, and a timed-out or cancelled
call leaves the engine idle for the next one (real SmolLM2, every token slowed down).

Asserts order and state (which generation ran when, how it ended, whether the engine is busy),
never wall-clock numbers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from autogen_core import CancellationToken
from autogen_core.models import UserMessage
from autogen_core.tools import FunctionTool

from alina.models import ModelTimeoutError
from alina.models.llamacpp import LlamaCppClient, _StopFlag

pytestmark = pytest.mark.integration

TOKEN_DELAY_S = 0.05  # a slow engine: a tool call of ~30 tokens takes > 1.5 s


def echo(text: str) -> str:
    """Repeat the text."""
    return text


TOOLS = [FunctionTool(echo, description="Repeat a text back.")]
ASK = [UserMessage(content="Repeat this long sentence about the weather in Paris and Rome.", source="user")]


@pytest.fixture
def engine_log(monkeypatch: pytest.MonkeyPatch) -> tuple[LlamaCppClient, list[tuple[str, Any]]]:
    client = LlamaCppClient(model="smollm2", n_ctx=4096, max_tokens=400, timeout_s=120.0)
    engine, log = client._engine, []
    generate = engine.generate

    def logged(kwargs: dict[str, Any], stop: _StopFlag) -> Any:
        log.append(("start", "grammar" in kwargs))
        try:
            return generate(kwargs, stop)
        finally:
            log.append(("end", stop.fired))

    monkeypatch.setattr(engine, "generate", logged)
    return client, log


def slow_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every generated token take TOKEN_DELAY_S (the criterion runs once per token)."""
    check = _StopFlag.__call__

    def slow(self: _StopFlag, ids: Any = None, logits: Any = None) -> bool:
        time.sleep(TOKEN_DELAY_S)
        return check(self, ids, logits)

    monkeypatch.setattr(_StopFlag, "__call__", slow)


async def test_a_timed_out_tool_turn_stops_and_the_next_call_finds_the_engine_idle(
    engine_log, monkeypatch
) -> None:
    client, log = engine_log
    with monkeypatch.context() as slow:
        slow_tokens(slow)
        with pytest.raises(ModelTimeoutError):
            await client.create(ASK, tools=TOOLS, extra_create_args={"timeout": 0.5})
        # The error surfaced only after the grammar-constrained generation had stopped.
        assert not client._engine.busy
    assert log[0] == ("start", True) and log[1][0] == "end" and log[1][1] in ("deadline", "cancelled"), log

    # normal speed again, same engine
    result = await client.create(
        [UserMessage(content="Say hi.", source="user")], extra_create_args={"max_tokens": 8}
    )
    assert isinstance(result.content, str)
    assert log[2:] == [("start", False), ("end", None)]  # began after the first ended; ran to the end


async def test_a_cancelled_call_stops_its_generation(engine_log, monkeypatch) -> None:
    client, log = engine_log
    slow_tokens(monkeypatch)
    token = CancellationToken()
    call = asyncio.create_task(client.create(ASK, tools=TOOLS, cancellation_token=token))
    while True:  # wait for the generation to start (state, not time)
        if client._engine.busy:
            break
        await asyncio.sleep(0.01)
    token.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert not client._engine.busy
    assert log == [("start", True), ("end", "cancelled")]
