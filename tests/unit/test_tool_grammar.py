"""The tool-call grammar: `tool` before `arguments` end to end, and raw newlines in strings.

No model runs here: the llama.cpp path is checked on the GBNF text llama_cpp's own converter
makes from what the engine compiles, the server paths on the request bytes the SDKs send.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import httpx
import pytest
from autogen_core.tools import FunctionTool
from llama_cpp.llama_grammar import json_schema_to_gbnf

from alina.agents import tools_for, tools_for_agent
from alina.models import _protocol as proto
from alina.models.llamacpp import _Engine
from alina.models.ollama import OllamaClient
from alina.models.openai_compat import OpenAICompatClient


def trend(symbol: str = "BTC/USDT", hours: float = 24.0) -> str:
    """Trend of a pair over the last hours."""
    return "up"


def note(text: str) -> str:
    """Keep a note."""
    return text


SPECS = proto.tool_specs([FunctionTool(trend, "Summarise the trend"), FunctionTool(note, "Keep a note")])
CALL = proto.tool_call_schema(SPECS)


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema.get("anyOf", [schema])


def _root_order(gbnf: str) -> list[int]:
    """Per alternative of the root rule (or its variant rules): the position of the tool key
    minus the position of the arguments key (negative: tool comes first)."""
    rules = dict(re.findall(r"^(\S+) ::= (.*)$", gbnf, re.M))
    out = []
    for body in rules["root"].split(" | "):
        body = rules.get(body.strip(), body)  # anyOf: root ::= root-0 | root-1 ...
        out.append(body.index("tool-kv") - body.index("arguments-kv"))
    return out


# --------------------------------------------------------------------------- declared order


def test_tool_call_schema_declares_tool_before_arguments() -> None:
    for schema in (CALL, proto.tool_call_schema(SPECS[:1])):
        for v in _variants(schema):
            assert list(v["properties"]) == ["tool", "arguments"]
            assert v["required"] == ["tool", "arguments"]
    text = proto.schema_text(CALL)
    assert json.loads(text) == CALL
    assert text.index('"tool"') < text.index('"arguments"')


@pytest.mark.parametrize("specs", [SPECS, SPECS[:1]], ids=["anyOf", "single"])
def test_gbnf_from_llama_cpp_lists_tool_before_arguments(specs: list[proto.ToolSpec]) -> None:
    schema = proto.tool_call_schema(specs)
    gbnf = json_schema_to_gbnf(proto.schema_text(schema))
    order = _root_order(gbnf)
    assert len(order) == len(specs) and all(d < 0 for d in order), gbnf
    # The key-sorted text this replaces put arguments first (the defect this guards against).
    assert all(d > 0 for d in _root_order(json_schema_to_gbnf(json.dumps(schema, sort_keys=True))))


def test_every_agent_tool_grammar_starts_with_the_tool_name() -> None:
    tools = tools_for_agent("trader") + tools_for("monitor") + tools_for("optimizer")
    specs = proto.tool_specs(tools)
    assert all(
        d < 0 for d in _root_order(json_schema_to_gbnf(proto.schema_text(proto.tool_call_schema(specs))))
    )
    choice = json_schema_to_gbnf(proto.schema_text(proto.choice_schema(specs)))
    rules = dict(re.findall(r"^(\S+) ::= (.*)$", choice, re.M))
    calls = [rules[r.strip()] for r in rules["root"].split(" | ") if "tool-kv" in rules[r.strip()]]
    assert len(calls) == len(specs) and all(b.index("tool-kv") < b.index("arguments-kv") for b in calls)


def test_llamacpp_engine_compiles_the_schema_in_declared_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp

    compiled: list[str] = []
    monkeypatch.setattr(
        llama_cpp.LlamaGrammar,
        "from_json_schema",
        classmethod(lambda cls, text, verbose=True: compiled.append(text) or text),
    )
    engine = _Engine.__new__(_Engine)  # no model: only the grammar cache is exercised
    engine._grammars = {}
    assert engine.grammar(CALL) == engine.grammar(json.loads(json.dumps(CALL))) == compiled[0]
    assert len(compiled) == 1 and all(d < 0 for d in _root_order(json_schema_to_gbnf(compiled[0])))
    # The same schema with `arguments` declared first is another grammar, never a cache hit.
    swapped = {"anyOf": [{**v, "properties": dict(reversed(v["properties"].items()))} for v in CALL["anyOf"]]}
    engine.grammar(swapped)
    assert len(compiled) == 2 and all(d > 0 for d in _root_order(json_schema_to_gbnf(compiled[1])))


def _chat_completion(content: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.mark.parametrize("style", ["json_schema", "llamacpp"])
async def test_openai_request_keeps_tool_before_arguments(style: str) -> None:
    import openai

    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(200, json=_chat_completion('{"tool": "trend", "arguments": {}}'))

    client = OpenAICompatClient(base_url="http://127.0.0.1:9/v1", model="m", json_schema_style=style)  # type: ignore[arg-type]
    client._client = openai.AsyncOpenAI(
        base_url="http://127.0.0.1:9/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    done = await client._complete(
        [{"role": "user", "content": "hi"}], schema=CALL, max_tokens=8, deadline=1e18
    )
    assert done.text.startswith('{"tool"')
    body = json.loads(sent[0])
    fmt = body["response_format"]
    schema = fmt["schema"] if style == "llamacpp" else fmt["json_schema"]["schema"]
    assert schema == CALL
    assert all(
        list(v["properties"]) == ["tool", "arguments"] for v in schema["anyOf"]
    )  # dicts keep wire order


async def test_ollama_request_keeps_tool_before_arguments() -> None:
    import ollama

    sent: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(
            200,
            json={
                "model": "m",
                "created_at": "2024-01-01T00:00:00Z",
                "done": True,
                "done_reason": "stop",
                "message": {"role": "assistant", "content": '{"tool": "trend", "arguments": {}}'},
                "prompt_eval_count": 1,
                "eval_count": 1,
            },
        )

    client = OllamaClient(base_url="http://127.0.0.1:9", model="m")
    client._client = ollama.AsyncClient(host="http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    await client._complete([{"role": "user", "content": "hi"}], schema=CALL, max_tokens=8, deadline=1e18)
    fmt = json.loads(sent[0])["format"]
    assert fmt == CALL and all(list(v["properties"]) == ["tool", "arguments"] for v in fmt["anyOf"])


def test_free_text_string_arguments_are_bounded_in_the_grammar_only() -> None:
    def find(order_id: str, symbol: Literal["BTC/USDT"] = "BTC/USDT", note: str = "") -> str:
        """Find an order."""
        return order_id

    [spec] = proto.tool_specs([FunctionTool(find, "Find an order")])
    spec.parameters["properties"]["note"]["maxLength"] = 500  # a tool's own bound is kept
    args = proto.tool_call_schema([spec])["properties"]["arguments"]
    assert args["properties"]["order_id"]["maxLength"] == proto.MAX_FREE_STRING_CHARS
    assert "maxLength" not in args["properties"]["symbol"]  # bounded by its enum already
    assert args["properties"]["note"]["maxLength"] == 500
    assert "maxLength" not in spec.parameters["properties"]["order_id"]  # the tool's schema is unchanged
    gbnf = json_schema_to_gbnf(proto.schema_text(proto.tool_call_schema([spec])))
    rules = dict(re.findall(r"^(\S+) ::= (.*)$", gbnf, re.M))
    assert rules["arguments-order-id"].count("char") == proto.MAX_FREE_STRING_CHARS  # at most 64 chars


# --------------------------------------------------------------------------- raw newlines


def test_grammar_allows_raw_newlines_in_strings() -> None:
    """Why the parser must accept them: llama_cpp's string rule excludes only quote and backslash."""
    gbnf = json_schema_to_gbnf(proto.schema_text(CALL))
    char = dict(re.findall(r"^(\S+) ::= (.*)$", gbnf, re.M))["char"]
    assert char.startswith('[^"\\\\]')  # any character but " and \ — so "\n" raw is allowed


def test_raw_newlines_in_strings_are_parsed() -> None:
    out = proto.parse_structured('{"tool": "note", "arguments": {"text": "line one\nline\ttwo"}}', SPECS)
    assert isinstance(out, list) and json.loads(out[0].arguments) == {"text": "line one\nline\ttwo"}
    assert proto.parse_structured('{"answer": "first\nsecond"}', SPECS) == "first\nsecond"
    # Raw newlines between tokens were always valid JSON; still are.
    out = proto.parse_structured('{\n"tool": "trend",\n"arguments": {"hours": 6}\n}', SPECS)
    assert isinstance(out, list) and json.loads(out[0].arguments) == {"hours": 6}


# --------------------------------------------------------------------------- preselect


def test_preselect_weighs_words_by_how_few_tools_mention_them() -> None:
    from autogen_core.models import UserMessage

    specs = proto.tool_specs(tools_for_agent("trader") + tools_for("monitor"))

    def ask(text: str) -> list[str]:
        return [s.name for s in proto.preselect(specs, [UserMessage(content=text, source="user")])]

    # "market" is in market_regime's name but three tools mention it; only place_order says "buy".
    assert ask("Buy 0.01 BTC/USDT at market") == ["place_order"]
    assert ask("What market regime is BTC in right now?") == ["market_regime"]
    assert ask("What is the BTC/USDT trend over the last 6 hours?") == ["candle_summary"]
    assert ask("Cancel order paper-3") == ["cancel_order"]
