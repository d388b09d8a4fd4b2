"""The embedded model streams for real: ``create_stream`` yields text piece by piece while the
model generates (real SmolLM2), the pieces add up to the result, usage is counted, and a
cancelled stream stops its generation and leaves the engine idle."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from autogen_core.models import CreateResult, UserMessage

from alina.models import ResilientClient
from alina.models.llamacpp import LlamaCppClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ASK = [UserMessage(content="Write two sentences about the sea.", source="user")]


@pytest.fixture(scope="module")
def client() -> LlamaCppClient:
    return LlamaCppClient(model="smollm2", n_ctx=4096, max_tokens=48, timeout_s=120.0)


async def test_text_arrives_in_pieces_before_the_result(client: LlamaCppClient) -> None:
    arrivals: list[tuple[float, Any]] = []
    async for item in ResilientClient("alina", client, retries=0).create_stream(ASK):
        arrivals.append((time.monotonic(), item))
    pieces = [i for _, i in arrivals if isinstance(i, str)]
    result = arrivals[-1][1]
    assert isinstance(result, CreateResult) and isinstance(result.content, str)
    assert len(pieces) >= 5  # token by token, not the whole text at once
    assert "".join(pieces).strip() == result.content
    # the first piece came while the model was still generating (before the last one)
    assert arrivals[0][0] < arrivals[-2][0]
    assert result.usage.completion_tokens > 0 and result.usage.prompt_tokens > 10


async def test_closing_a_stream_stops_the_generation(client: LlamaCppClient) -> None:
    stream = client.create_stream(ASK, extra_create_args={"max_tokens": 400})
    async for item in stream:
        assert isinstance(item, str)
        break  # the person pressed Ctrl-C after the first piece
    await stream.aclose()
    for _ in range(100):  # the engine thread notices the stop at its next token
        if not client._engine.busy:
            break
        await asyncio.sleep(0.05)
    assert not client._engine.busy
