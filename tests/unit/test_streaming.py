"""Token streaming through the client stack (scripted provider; the real one: test_llamacpp_stream).

A provider that streams hands each piece to the token sink; ``create_stream`` on any wrapper
(answer check, tool gate, resilience) yields the pieces as they come, then the result of the
ordinary ``create`` path, which may supersede them (retry, answer check)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from autogen_core.models import CreateResult, UserMessage
from autogen_core.tools import FunctionTool

from alina.config import AlinaConfig
from alina.models import Completion, JsonToolClient, ModelTimeoutError, ResilientClient, allow_model_requests
from alina.models._protocol import ChatDict
from alina.models._stream import TokenSink
from alina.skills.context import RunContext, run_context
from alina.team import MemorySink, TeamRunner
from alina.team._answers import AnswerCheckClient
from tests.scripted import call, replay

ASK = [UserMessage(content="What is the BTC price?", source="user")]


@pytest.fixture(autouse=True)
def _scripted_provider(_model_request_guard: None) -> Iterator[None]:
    """Piecewise is a scripted provider on the real client base class: let its calls through."""
    with allow_model_requests():
        yield


class Piecewise(JsonToolClient):
    """A streaming provider: each text answer of ``answers`` arrives in 4-character pieces; an
    exception in ``answers`` is raised after the first piece (a generation cut off)."""

    provider = "piecewise"
    streams = True

    def __init__(self, answers: Sequence[Any]) -> None:
        super().__init__(model="piecewise", timeout_s=5)
        self.answers = list(answers)
        self.streamed_calls = 0

    def _next(self) -> Any:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def _complete(
        self, chat: list[ChatDict], *, schema: Any, max_tokens: int, deadline: float
    ) -> Completion:
        answer = self._next()
        if isinstance(answer, BaseException):
            raise answer
        return Completion(answer, 10, 5)

    async def _complete_streaming(
        self, chat: list[ChatDict], *, max_tokens: int, deadline: float, sink: TokenSink
    ) -> Completion:
        self.streamed_calls += 1
        answer = self._next()
        text = answer if isinstance(answer, str) else "cut off mid-"
        for i in range(0, len(text), 4):
            sink(text[i : i + 4])
            await asyncio.sleep(0)
            if isinstance(answer, BaseException):
                raise answer
        return Completion(text, 10, 5)

    def _count_text(self, text: str) -> int:
        return len(text.split())


async def _collect(client: Any, messages: Any = ASK, **kwargs: Any) -> tuple[list[str], CreateResult]:
    pieces, result = [], None
    async for item in client.create_stream(messages, **kwargs):
        if isinstance(item, str):
            pieces.append(item)
        else:
            result = item
    assert result is not None
    return pieces, result


async def test_text_streams_in_pieces_through_the_resilient_client() -> None:
    text = "BTC/USDT trades at 97123.45 right now."
    pieces, result = await _collect(ResilientClient("alina", Piecewise([text]), retries=0))
    assert len(pieces) > 3 and "".join(pieces) == text == result.content


def get_price(symbol: str) -> str:
    return symbol


async def test_a_tool_turn_is_not_streamed() -> None:
    tool = FunctionTool(get_price, description="price of a pair")
    provider = Piecewise(['{"tool": "get_price", "arguments": {"symbol": "BTC/USDT"}}'])
    pieces, result = await _collect(ResilientClient("trader", provider, retries=0), tools=[tool])
    assert pieces == [] and provider.streamed_calls == 0
    assert not isinstance(result.content, str) and result.content[0].name == "get_price"


async def test_a_retry_after_a_cut_stream_ends_with_the_retried_answer() -> None:
    provider = Piecewise([ModelTimeoutError("stopped"), "The full answer."])
    pieces, result = await _collect(ResilientClient("alina", provider, retries=1))
    assert "".join(pieces).startswith("cut ")  # the cut attempt was on screen ...
    assert result.content == "The full answer."  # ... and the result supersedes it


async def test_the_answer_check_replaces_a_streamed_answer_and_its_retry_is_not_streamed() -> None:
    wrong, right = "BTC is 12 dollars.", "BTC/USDT is 97123.45."
    provider = Piecewise([wrong, right])
    client = AnswerCheckClient(ResilientClient("alina", provider, retries=0))
    report = [UserMessage(content="x", source="user")]
    from autogen_agentchat.messages import TextMessage

    reports = [TextMessage(source="trader", content="get_price: BTC/USDT last 97123.45")]
    ctx = RunContext(task="What is the BTC/USDT price?", messages=lambda: reports)
    with run_context(ctx):
        pieces, result = await _collect(client, [*report, *ASK])
    assert "".join(pieces) == wrong and provider.streamed_calls == 1
    assert result.content == right and ctx.answer_checks[-1].outcome == "regenerated"


async def test_a_team_run_hands_streamed_pieces_over_and_stores_only_the_messages() -> None:
    answer = "BTC/USDT last price is 97123.45 per the trader."
    clients = {
        "trader": ResilientClient("trader", replay(call("get_price", '{"symbol": "BTC/USDT"}')), retries=0),
        "monitor": ResilientClient("monitor", replay("ok"), retries=0),
        "optimizer": ResilientClient("optimizer", replay("ok"), retries=0),
        "alina": ResilientClient("alina", Piecewise([answer]), retries=0),
        "selector": ResilientClient("selector", replay(), retries=0),
    }
    cfg = AlinaConfig.model_validate({"team": {"check_answers": False}})
    seen: list[tuple[str, str]] = []
    runner = TeamRunner(cfg, sink=MemorySink(), clients=clients, on_chunk=lambda a, t: seen.append((a, t)))
    result = await runner.run("What is the BTC/USDT price?")
    assert result.status == "completed", result.error
    streamed = "".join(t for a, t in seen if a == "alina")
    assert streamed == answer == result.answer and len([a for a, _ in seen if a == "alina"]) > 3
    assert not any("Chunk" in e.type for e in result.events)


async def test_a_cache_hit_hands_over_the_whole_text_at_once() -> None:
    from tests.unit.test_prompt_refresh import DictCache

    text = "BTC/USDT trades at 97123.45 right now."
    provider = Piecewise([text])
    client = ResilientClient("alina", provider, retries=0, cache=DictCache())
    first, _ = await _collect(client)
    again, result = await _collect(client)
    assert len(first) > 3 and provider.streamed_calls == 1  # the second call never reached the model
    assert again == [text] and result.content == text
