"""The provider-neutral tool protocol: AutoGen messages <-> plain chat, tools <-> JSON schema.

Small local models do not produce reliable native tool calls, but every backend here
(llama.cpp in-process or its server, Ollama, OpenAI-compatible servers) can constrain decoding
to a JSON schema. A tool turn is therefore a grammar-constrained JSON object::

    {"tool": "<one of the tool names>", "arguments": {<that tool's full argument schema>}}

which this module turns into AutoGen ``FunctionCall``s (the tool name comes first and free-text
strings are length-bounded, see :func:`tool_call_schema`). History is rendered append-only and
deterministically, so the prompt prefix stays byte-identical across turns (prefix cache reuse).
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from autogen_core import FunctionCall
from autogen_core.models import (
    AssistantMessage,
    FunctionExecutionResultMessage,
    LLMMessage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tools import Tool, ToolSchema

from alina.models._errors import MalformedOutputError

ChatDict = dict[str, str]
TurnKind = Literal["text", "tool", "choice"]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


def tool_specs(tools: Sequence[Tool | ToolSchema]) -> list[ToolSpec]:
    """Normalise AutoGen tools or tool schemas to name, description and full JSON schema."""
    specs = []
    for t in tools:
        schema: Any = t.schema if isinstance(t, Tool) else t
        params = dict(schema.get("parameters") or {"type": "object", "properties": {}})
        specs.append(ToolSpec(schema["name"], schema.get("description", ""), params))
    return specs


def _render_call(call: FunctionCall) -> str:
    # Not the JSON the grammar produces: in text turns a small model imitates JSON it sees.
    return f"[called {call.name} {call.arguments or '{}'}]"


def to_chat(messages: Sequence[LLMMessage]) -> list[ChatDict]:
    """Render AutoGen messages as role/content dicts every chat template accepts.

    Messages from other agents become user turns prefixed with the speaker's name; a tool call
    is rendered in the same JSON form the model is constrained to produce; tool results become
    user turns (no backend here needs the OpenAI ``tool`` role, and chat templates of small
    models often lack it).
    """
    out: list[ChatDict] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": m.content})
        elif isinstance(m, UserMessage):
            if not isinstance(m.content, str):
                text = " ".join(c for c in m.content if isinstance(c, str))
            else:
                text = m.content
            prefix = "" if m.source in ("user", "") else f"{m.source}: "
            out.append({"role": "user", "content": prefix + text})
        elif isinstance(m, AssistantMessage):
            if isinstance(m.content, str):
                out.append({"role": "assistant", "content": m.content})
            else:
                out.append({"role": "assistant", "content": "\n".join(_render_call(c) for c in m.content)})
        elif isinstance(m, FunctionExecutionResultMessage):
            parts = [
                f"Tool result ({r.name}{', error' if r.is_error else ''}): {r.content}" for r in m.content
            ]
            out.append({"role": "user", "content": "\n".join(parts)})
        else:  # pragma: no cover - AutoGen has no other LLMMessage types in 0.7.5
            raise TypeError(f"unsupported message type {type(m).__name__}")
    return out


MAX_FREE_STRING_CHARS = 64
"""Length bound the tool grammar puts on a string argument the tool leaves unbounded."""

_STRING_BOUNDS = frozenset({"enum", "const", "maxLength", "pattern", "format"})


def _bounded_strings(parameters: dict[str, Any]) -> dict[str, Any]:
    """``parameters`` with ``maxLength`` :data:`MAX_FREE_STRING_CHARS` on every top-level string
    argument that has no bound of its own (enum, const, maxLength, pattern, format).

    Unbounded, a small model may repeat characters until ``max_tokens`` ("Cancel order paper-3"
    made the 135M model write an order id of endless digits), and the cut-off call fails the
    turn; bounded, the call ends and the tool can reject or correct a bad value. Ids, pairs and
    names fit; a tool needing longer text declares its own ``maxLength``. Only the grammar
    sees the bound: the tool's own schema and validation are unchanged.
    """
    props = parameters.get("properties")
    if not isinstance(props, dict):
        return parameters
    bounded = {
        name: (
            {**p, "maxLength": MAX_FREE_STRING_CHARS}
            if isinstance(p, dict) and p.get("type") == "string" and not _STRING_BOUNDS & p.keys()
            else p
        )
        for name, p in props.items()
    }
    return {**parameters, "properties": bounded}


def tool_call_schema(specs: Sequence[ToolSpec]) -> dict[str, Any]:
    """JSON schema of one tool call: the tool name as an enum and that tool's argument schema
    (with free-text strings bounded, see :func:`_bounded_strings`).

    ``tool`` is declared before ``arguments``, and a grammar compiled from this schema in its
    declared order (see :func:`schema_text`) makes the model write the tool name first: it
    commits to a tool, then fills in that tool's arguments. Compiled from a key-sorted copy,
    ``arguments`` came first and the first argument the model typed decided the tool.
    """
    variants = [
        {
            "type": "object",
            "properties": {
                "tool": {"type": "string", "enum": [s.name]},
                "arguments": _bounded_strings(s.parameters),
            },
            "required": ["tool", "arguments"],
        }
        for s in specs
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def schema_text(schema: dict[str, Any]) -> str:
    """``schema`` as JSON text in its declared key order, for grammar compilers.

    llama.cpp's JSON-schema-to-grammar converters emit an object's properties in the order the
    schema lists them, so this text must never be key-sorted (see :func:`tool_call_schema`).
    """
    return json.dumps(schema, ensure_ascii=False)


def choice_schema(specs: Sequence[ToolSpec]) -> dict[str, Any]:
    """Schema that lets the model either call one tool or answer in text."""
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    }
    call = tool_call_schema(specs)
    calls = call["anyOf"] if "anyOf" in call else [call]
    return {"anyOf": [*calls, answer]}


def turn_kind(
    messages: Sequence[LLMMessage],
    has_tools: bool,
    tool_choice: str,
    policy: Literal["first", "model"],
) -> TurnKind:
    """Decide what this call must produce: a tool call, free text, or the model's choice.

    ``first``: a turn starts with a tool call; once tool results are in, the agent answers.
    """
    if not has_tools or tool_choice == "none":
        return "text"
    if tool_choice == "required":
        return "tool"
    after_results = bool(messages) and isinstance(messages[-1], FunctionExecutionResultMessage)
    if policy == "first":
        return "text" if after_results else "tool"
    return "choice"


_STOP = frozenset(
    "the a an of and or is are was were be to in on for with what how over last this that "
    "it its do does did can you me my our your from by at as".split()
)
_TOKEN = re.compile(r"[a-z][a-z0-9]+")


def _words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _TOKEN.findall(text.lower().replace("_", " ")) if w not in _STOP}


def preselect(specs: Sequence[ToolSpec], messages: Sequence[LLMMessage]) -> list[ToolSpec]:
    """Narrow a forced tool call to the tool the request clearly asks for.

    Scores each tool by the words its name and description share with the latest user request,
    each word weighted by how few of the offered tools mention it (1/n for a word in n tools);
    the best-scoring tools stay in the grammar (all of them when nothing matches). A small model
    then only fills in arguments instead of choosing (which it does badly).
    """
    if len(specs) < 2:
        return list(specs)
    request = next(
        (
            m.content
            for m in reversed(messages)
            if isinstance(m, UserMessage) and m.source == "user" and isinstance(m.content, str)
        ),
        "",
    )
    words = _words(request)
    texts = [_words(f"{s.name} {s.description}") for s in specs]
    names = [_words(s.name) for s in specs]
    # A word many tools mention says little about which one is meant: "buy ... at market" is an
    # order (only place_order mentions "buy"), not market_regime (three tools mention "market").
    mentions = Counter(w for text in texts for w in text)
    # A word in the tool's name counts twice: "price" points at get_price before a tool that
    # merely mentions prices. Fractions: exact ties must stay ties.
    scores = [
        sum((Fraction(1, mentions[w]) for w in words & text), Fraction(0))
        + sum((Fraction(1, mentions[w]) for w in words & name), Fraction(0))
        for text, name in zip(texts, names, strict=True)
    ]
    best = max(scores)
    if best == 0:
        return list(specs)
    return [s for s, score in zip(specs, scores, strict=True) if score == best]


def tool_instruction(specs: Sequence[ToolSpec]) -> str:
    """A short system line naming the tools; the grammar does the real constraining."""
    listing = "; ".join(f"{s.name}: {s.description}" for s in specs)
    return f'Call one tool as JSON {{"tool": name, "arguments": {{...}}}}. Tools: {listing}'


def parse_structured(text: str, specs: Sequence[ToolSpec]) -> list[FunctionCall] | str:
    """Turn constrained JSON output into FunctionCalls, or the answer string of a choice turn.

    Raises :class:`MalformedOutputError` (quoting the output) when the text is not the promised JSON.
    Control characters (a raw newline) inside strings are accepted: the grammars llama.cpp
    compiles from a JSON schema allow them, so constrained output may contain them.
    """
    try:
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise MalformedOutputError(f"model output is not JSON ({exc.msg}): {text[:200]!r}") from None
    if isinstance(data, dict) and "answer" in data and "tool" not in data:
        return str(data["answer"])
    names = {s.name for s in specs}
    if not isinstance(data, dict) or data.get("tool") not in names:
        raise MalformedOutputError(f"model output names no known tool {sorted(names)}: {text[:200]!r}")
    args = data.get("arguments") or {}
    if not isinstance(args, dict):
        raise MalformedOutputError(f"tool arguments must be an object: {text[:200]!r}")
    return [
        FunctionCall(
            id=f"call_{uuid.uuid4().hex[:12]}",
            name=data["tool"],
            arguments=json.dumps(args, ensure_ascii=False),
        )
    ]
