"""The provider-neutral tool protocol: rendering, schemas, parsing, turn policy."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import FunctionTool

from alina.models import ModelOutputError
from alina.models import _protocol as proto


def price(symbol: Literal["BTC/USDT", "ETH/USDT"] = "BTC/USDT") -> str:
    """Last price of a pair."""
    return "1"


def trend(symbol: str = "BTC/USDT", hours: float = 24.0) -> str:
    """Trend of a pair over the last hours of market data."""
    return "up"


TOOLS = [
    FunctionTool(price, "Get the last price of a pair"),
    FunctionTool(trend, "Summarise the trend over the last hours"),
]
SPECS = proto.tool_specs(TOOLS)


def test_tool_round_renders_as_plain_chat_turns() -> None:
    msgs = [
        SystemMessage(content="sys"),
        UserMessage(content="task", source="user"),
        UserMessage(content="I checked", source="monitor"),
        AssistantMessage(
            content=[FunctionCall(id="1", name="price", arguments='{"symbol": "BTC/USDT"}')], source="trader"
        ),
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="42", name="price", call_id="1", is_error=False)]
        ),
        AssistantMessage(content="It is 42.", source="trader"),
    ]
    assert proto.to_chat(msgs) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "task"},
        {"role": "user", "content": "monitor: I checked"},
        {"role": "assistant", "content": '[called price {"symbol": "BTC/USDT"}]'},
        {"role": "user", "content": "Tool result (price): 42"},
        {"role": "assistant", "content": "It is 42."},
    ]


def test_rendering_is_deterministic_so_prompt_prefixes_stay_stable() -> None:
    msgs = [SystemMessage(content="s"), UserMessage(content="t", source="user")]
    assert proto.to_chat(msgs) == proto.to_chat(msgs[:1]) + proto.to_chat(msgs[1:])


def test_tool_call_schema_keeps_full_argument_schemas() -> None:
    schema = proto.tool_call_schema(SPECS)
    variants = schema["anyOf"]
    assert [v["properties"]["tool"]["enum"] for v in variants] == [["price"], ["trend"]]
    assert variants[0]["properties"]["arguments"]["properties"]["symbol"]["enum"] == ["BTC/USDT", "ETH/USDT"]
    assert proto.tool_call_schema(SPECS[:1])["properties"]["tool"]["enum"] == ["price"]


def test_parse_returns_function_calls_with_unique_ids() -> None:
    a = proto.parse_structured('{"tool": "price", "arguments": {"symbol": "ETH/USDT"}}', SPECS)
    b = proto.parse_structured('{"tool": "price", "arguments": {}}', SPECS)
    assert (
        isinstance(a, list) and a[0].name == "price" and json.loads(a[0].arguments) == {"symbol": "ETH/USDT"}
    )
    assert isinstance(b, list) and a[0].id != b[0].id


def test_parse_choice_answer() -> None:
    assert proto.parse_structured('{"answer": "no tool needed"}', SPECS) == "no tool needed"


@pytest.mark.parametrize(
    "garbage", ["not json", '{"tool": "rm_rf", "arguments": {}}', '{"tool": "price", "arguments": [1]}', "[]"]
)
def test_garbage_output_is_a_model_output_error_quoting_it(garbage: str) -> None:
    with pytest.raises(ModelOutputError) as info:
        proto.parse_structured(garbage, SPECS)
    assert repr(garbage[:20])[1:-1] in str(info.value)


def test_turn_kind_policy() -> None:
    task = [UserMessage(content="t", source="user")]
    after = task + [
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="1", name="price", call_id="1")]
        )
    ]
    assert proto.turn_kind(task, True, "auto", "first") == "tool"
    assert proto.turn_kind(after, True, "auto", "first") == "text"
    assert proto.turn_kind(task, True, "auto", "model") == "choice"
    assert proto.turn_kind(task, True, "none", "first") == "text"
    assert proto.turn_kind(after, True, "required", "first") == "tool"
    assert proto.turn_kind(task, False, "auto", "first") == "text"


def test_preselect_picks_the_tool_the_request_names() -> None:
    ask = lambda text: [s.name for s in proto.preselect(SPECS, [UserMessage(content=text, source="user")])]  # noqa: E731
    assert ask("What is the trend over the last day?") == ["trend"]
    assert ask("What is the last price of BTC?") == ["price"]
    assert ask("Tell me something") == ["price", "trend"]  # no clear winner: the grammar keeps both
