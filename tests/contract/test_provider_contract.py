"""One contract, every provider: llamacpp (in-process), openai (llama_cpp.server), ollama (test shim).

Every test that reaches a model is marked ``integration`` (the root conftest blocks real model
requests otherwise) and runs under the ``net`` guard: sockets may connect only to the provider's
own loopback server (in-process llamacpp: nowhere). Tests assert behaviour, never wall-clock time.

The ``ollama`` provider runs against ``ollama_shim`` — NOT a real Ollama server (none can be
installed here); see that module for what this leaves unverified.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, Literal

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import (
    TextMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
    ToolCallSummaryMessage,
)
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, LLMMessage, SystemMessage, UserMessage
from autogen_core.tools import FunctionTool

from alina.models import (
    JsonToolClient,
    ModelError,
    ModelOutputError,
    ModelTimeoutError,
    ModelUnreachableError,
)

try:
    import jsonschema
except ImportError:  # pragma: no cover - jsonschema ships with the dev environment
    jsonschema = None

integration = pytest.mark.integration

UNITS = ("celsius", "fahrenheit")


# -- tools -----------------------------------------------------------------------------------
class ToolLog:
    """Real Python tools that record every call they actually execute."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def tools(self) -> list[Any]:  # FunctionTools (typed Any: AssistantAgent wants a wider list type)
        async def get_weather(
            city: Annotated[str, "Name of the city"],
            unit: Annotated[Literal["celsius", "fahrenheit"], "Temperature unit"],
            days: Annotated[int, "Number of forecast days"] = 1,
        ) -> str:
            self.calls.append(("get_weather", {"city": city, "unit": unit, "days": days}))
            return f"Sunny and 21 degrees {unit} in {city} for the next {days} day(s)."

        async def add_numbers(a: Annotated[int, "First integer"], b: Annotated[int, "Second integer"]) -> int:
            self.calls.append(("add_numbers", {"a": a, "b": b}))
            return a + b

        return [
            FunctionTool(get_weather, description="Get the weather forecast for a city."),
            FunctionTool(add_numbers, description="Add two integers and return the sum."),
        ]


def user(text: str) -> UserMessage:
    return UserMessage(content=text, source="user")


SYSTEM = SystemMessage(content="You are a helpful assistant. Answer briefly.")


def assert_valid_calls(result: CreateResult, tools: list[FunctionTool]) -> list[FunctionCall]:
    """The result is a list of FunctionCalls whose arguments validate against the tool's full schema."""
    assert result.finish_reason == "function_calls", result
    assert isinstance(result.content, list) and result.content, result
    by_name = {t.name: t for t in tools}
    for call in result.content:
        assert isinstance(call, FunctionCall), call
        assert call.name in by_name, f"unknown tool {call.name!r}"
        assert call.id
        args = json.loads(call.arguments)
        assert isinstance(args, dict)
        tool = by_name[call.name]
        tool.args_type().model_validate_json(call.arguments)  # pydantic validation
        if jsonschema is not None:
            jsonschema.validate(args, tool.schema["parameters"])  # the full JSON schema
        for prop, spec in tool.schema["parameters"]["properties"].items():
            if "enum" in spec and prop in args:
                assert args[prop] in spec["enum"], (prop, args[prop], spec["enum"])
    return list(result.content)


def assert_usage(result: CreateResult) -> None:
    assert result.usage.prompt_tokens > 0, result.usage
    assert result.usage.completion_tokens > 0, result.usage


# -- 1. plain text ---------------------------------------------------------------------------
@integration
async def test_plain_text_answer(provider, net) -> None:
    r = await provider.client.create([SYSTEM, user("Say hello in one short sentence.")])
    assert isinstance(r.content, str) and r.content.strip(), r
    assert r.finish_reason in ("stop", "length"), r
    assert_usage(r)


@integration
async def test_a_text_turn_streams_piece_by_piece(provider, net) -> None:
    """Every provider streams a plain text turn (llama.cpp in process, the OpenAI-compatible
    server's events, Ollama's NDJSON): pieces arrive before the result, add up to its text, and
    usage is counted; the chat shows an answer from any provider as it is generated."""
    items = [
        item
        async for item in provider.client.create_stream(
            [SYSTEM, user("Write two sentences about the sea.")], extra_create_args={"max_tokens": 48}
        )
    ]
    pieces = [i for i in items if isinstance(i, str)]
    result = items[-1]
    assert isinstance(result, CreateResult) and isinstance(result.content, str), items[-1]
    assert len(pieces) >= 3, pieces  # not the whole text at once
    assert "".join(pieces).strip() == result.content.strip()
    assert_usage(result)


# -- 2. tool calls with the full schema ------------------------------------------------------
@integration
@pytest.mark.parametrize(
    "prompt",
    [
        # Preselection narrows this to get_weather; "kelvin" is not in the enum, so only the
        # grammar (the full schema reaching the model) keeps `unit` valid.
        "What is the weather in Paris in kelvin?",
        # Matches no tool: both tool schemas (anyOf) reach the model.
        "Help me please.",
    ],
    ids=["one-tool", "both-tools"],
)
async def test_tool_call_validates_against_full_schema(provider, net, monkeypatch, prompt: str) -> None:
    client = provider.client
    seen_schemas: list[dict[str, Any] | None] = []
    texts: list[str] = []
    backend = client._complete

    async def spy(chat, *, schema, max_tokens, deadline):  # records what the backend is asked for
        seen_schemas.append(schema)
        done = await backend(chat, schema=schema, max_tokens=max_tokens, deadline=deadline)
        texts.append(done.text)
        return done

    monkeypatch.setattr(client, "_complete", spy)
    tools = ToolLog().tools()
    r = await client.create([SYSTEM, user(prompt)], tools=tools)
    calls = assert_valid_calls(r, tools)
    assert_usage(r)
    if prompt.startswith("What is the weather"):
        assert calls[0].name == "get_weather"
        assert json.loads(calls[0].arguments)["unit"] in UNITS
    # The constraint handed to the backend carries the tools' full argument schemas.
    (schema,) = seen_schemas
    assert schema is not None
    assert json.dumps(list(UNITS)) in json.dumps(schema)
    assert '"default": 1' in json.dumps(schema)
    if provider.name == "ollama":  # and it went over the wire as Ollama's `format`
        assert provider.server.requests[-1]["format"] == schema
    # The grammar kept the schema's declared order end to end: the tool name is written first.
    assert re.match(r'\s*\{\s*"tool"\s*:', texts[0]), texts


@integration
async def test_tool_choice_model_returns_call_or_answer(provider, net) -> None:
    """tool_policy "model": the grammar lets the model call a tool or answer (anyOf + answer)."""
    client = provider.make(tool_policy="model")
    tools = ToolLog().tools()
    r = await client.create([SYSTEM, user("What is the weather in Rome?")], tools=tools)
    if isinstance(r.content, str):
        assert r.content.strip() and r.finish_reason == "stop", r
    else:
        assert_valid_calls(r, tools)
    assert_usage(r)


# -- 3. tool rounds executed by AutoGen agents -----------------------------------------------
@integration
async def test_agent_runs_tool_rounds_twice_in_one_conversation(provider, net, monkeypatch) -> None:
    client = provider.client
    chats: list[list[dict[str, str]]] = []
    backend = client._complete

    async def spy(chat, *, schema, max_tokens, deadline):
        chats.append(list(chat))
        return await backend(chat, schema=schema, max_tokens=max_tokens, deadline=deadline)

    monkeypatch.setattr(client, "_complete", spy)
    log = ToolLog()
    agent = AssistantAgent(
        "assistant",
        model_client=client,
        tools=log.tools(),
        system_message="You are a helpful assistant. Use the tools.",
    )

    first = await agent.run(task="What is the weather in Paris?")
    assert [name for name, _ in log.calls] == ["get_weather"], log.calls
    assert any(isinstance(m, ToolCallRequestEvent) for m in first.messages), first.messages
    executions = [m for m in first.messages if isinstance(m, ToolCallExecutionEvent)]
    assert executions and not any(r.is_error for e in executions for r in e.content), executions
    assert isinstance(first.messages[-1], ToolCallSummaryMessage), first.messages[-1]

    # Follow-up in the same conversation: the history now holds a tool call and its result.
    second = await agent.run(task="Now add 2 and 3.")
    assert [name for name, _ in log.calls] == ["get_weather", "add_numbers"], log.calls
    assert any(isinstance(m, ToolCallRequestEvent) for m in second.messages), second.messages
    executions = [m for m in second.messages if isinstance(m, ToolCallExecutionEvent)]
    assert executions and not any(r.is_error for e in executions for r in e.content), executions
    prompt = "\n".join(m["content"] for m in chats[-1])
    assert "Tool result (get_weather" in prompt and "Paris" in prompt, chats[-1]


@integration
async def test_agent_answers_in_text_after_tool_round(provider, net) -> None:
    """max_tool_iterations=2 with tool_policy "first": one tool round, then a text answer."""
    log = ToolLog()
    agent = AssistantAgent(
        "assistant",
        model_client=provider.client,
        tools=log.tools(),
        max_tool_iterations=2,
        system_message="You are a helpful assistant. Use the tools, then answer the user.",
    )
    result = await agent.run(task="What is the weather in Oslo?")
    assert [name for name, _ in log.calls] == ["get_weather"], log.calls
    assert sum(isinstance(m, ToolCallRequestEvent) for m in result.messages) == 1, result.messages
    assert sum(isinstance(m, ToolCallExecutionEvent) for m in result.messages) == 1, result.messages
    final = result.messages[-1]
    assert isinstance(final, TextMessage) and final.source == "assistant", final
    assert final.content.strip(), final


# -- 4. timeout ------------------------------------------------------------------------------
@integration
async def test_timeout_raises_and_provider_recovers(provider, net) -> None:
    client = provider.client
    long_prompt = [user("Write a very long story about a dragon who learns to fly. Use at least 1000 words.")]
    with pytest.raises(ModelTimeoutError):
        await client.create(long_prompt, extra_create_args={"timeout": 0.2, "max_tokens": 400})
    r = await client.create([SYSTEM, user("Say hello in one short sentence.")])
    assert isinstance(r.content, str) and r.content.strip(), r
    assert_usage(r)


# -- 5. token counting without downloads -----------------------------------------------------
@integration
def test_token_counting_offline(provider, network_guard) -> None:
    client = provider.client
    messages: list[LLMMessage] = [SYSTEM, user("What is the weather in Paris?")]
    tools = ToolLog().tools()
    with network_guard(frozenset()) as guard:  # nothing reachable, not even the provider's server
        n = client.count_tokens(messages)
        n_tools = client.count_tokens(messages, tools=tools)
        remaining = client.remaining_tokens(messages)
    assert guard.attempts == []
    assert isinstance(n, int) and n > 0
    assert isinstance(n_tools, int) and n_tools > n
    assert isinstance(remaining, int) and 0 < remaining == client.n_ctx - n


# -- 6. no network except the configured server ----------------------------------------------
@integration
async def test_only_the_configured_server_is_contacted(provider, net) -> None:
    client = provider.make()  # fresh client: no pooled connections, so it must connect
    r = await client.create([user("Say hi.")], extra_create_args={"max_tokens": 8})
    assert isinstance(r.content, str)
    if provider.allowed:
        assert net.attempts and all((a[0], a[1]) in provider.allowed for a in net.attempts), net.attempts
    else:
        assert net.attempts == [], f"in-process provider opened connections: {net.attempts}"


def test_network_guard_blocks_everything_else(network_guard) -> None:
    """Self-test of the guard (no model): other loopback ports and remote hosts are refused."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with network_guard({("127.0.0.1", port)}) as guard:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
            with pytest.raises(OSError, match="network guard"), socket.socket() as s:
                s.connect(("127.0.0.1", port + 1 if port < 65535 else port - 1))
            with pytest.raises(OSError, match="network guard"):
                socket.create_connection(("example.com", 443), timeout=1)
        assert guard.blocked and len(guard.attempts) == 4
    assert "connect" not in socket.socket.__dict__  # restored afterwards
    assert socket.create_connection.__module__ == "socket"


# -- 7. usage accumulates --------------------------------------------------------------------
@integration
async def test_usage_accumulates(provider, net) -> None:
    client = provider.make()
    assert (client.total_usage().prompt_tokens, client.total_usage().completion_tokens) == (0, 0)
    r1 = await client.create([SYSTEM, user("Say hello in one short sentence.")])
    tools = ToolLog().tools()
    r2 = await client.create([SYSTEM, user("What is the weather in Paris?")], tools=tools)
    total = client.total_usage()
    assert total.prompt_tokens == r1.usage.prompt_tokens + r2.usage.prompt_tokens
    assert total.completion_tokens == r1.usage.completion_tokens + r2.usage.completion_tokens
    assert client.actual_usage() == r2.usage
    assert_usage(r1)
    assert_usage(r2)


# -- 8. garbage from the server (HTTP providers only) ----------------------------------------
def _chat_reply(provider: str, content: str) -> dict[str, Any]:
    if provider == "openai":
        return {
            "id": "chatcmpl-garbage",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
        }
    return {
        "model": "m",
        "created_at": "2025-01-01T00:00:00Z",
        "done": True,
        "done_reason": "stop",
        "message": {"role": "assistant", "content": content},
        "prompt_eval_count": 5,
        "eval_count": 5,
    }


# variant -> (what the server sends: a content type, "chat-reply", "other-json" or None to drop the
# connection after reading the request; the ModelError the client must raise)
GARBAGE: dict[str, tuple[str | None, type[ModelError]]] = {
    "content-not-json": ("chat-reply", ModelOutputError),  # a well-formed reply whose text is garbage
    "body-not-json": ("text/html", ModelOutputError),  # HTTP 200, body is not JSON at all
    "body-not-json-labelled-json": ("application/json", ModelOutputError),
    "json-not-a-chat-reply": ("other-json", ModelOutputError),  # HTTP 200, JSON of another shape
    "connection-dropped": (None, ModelUnreachableError),  # request read, connection closed
}


class GarbageServer:
    """A tiny loopback HTTP server answering every request the same (wrong) way."""

    def __init__(self, provider: str, variant: str) -> None:
        kind, _ = GARBAGE[variant]
        if kind == "chat-reply":
            ctype, body = "application/json", json.dumps(_chat_reply(provider, "Sorry, I can't do that."))
        elif kind == "other-json":
            ctype, body = "application/json", json.dumps({"hello": "world"})
        elif kind is None:
            ctype, body = "", None
        else:
            ctype, body = kind, "<html><body>Bad gateway? No: 200 OK, but not JSON.</body></html>"
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _answer(self) -> None:
                outer.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if body is None:
                    self.close_connection = True
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _http_client(provider: str, port: int) -> tuple[JsonToolClient, str]:
    kw: dict[str, Any] = dict(n_ctx=2048, max_tokens=32, timeout_s=10.0)
    if provider == "openai":
        from alina.models.openai_compat import OpenAICompatClient

        url = f"http://127.0.0.1:{port}/v1"
        return OpenAICompatClient(base_url=url, json_schema_style="llamacpp", model="m", **kw), url
    from alina.models.ollama import OllamaClient

    url = f"http://127.0.0.1:{port}"
    return OllamaClient(base_url=url, model="m", **kw), url


@pytest.fixture
def garbage_server(request: pytest.FixtureRequest) -> Iterator[GarbageServer]:
    server = GarbageServer(*request.param)
    try:
        yield server
    finally:
        server.close()


@integration
@pytest.mark.parametrize(
    "garbage_server",
    [(p, v) for p in ("openai", "ollama") for v in GARBAGE],
    ids=[f"{p}-{v}" for p in ("openai", "ollama") for v in GARBAGE],
    indirect=True,
)
async def test_garbage_from_server_on_tool_turn(
    garbage_server: GarbageServer, request: pytest.FixtureRequest, network_guard: Any
) -> None:
    provider, variant = request.node.callspec.params["garbage_server"]
    expected = GARBAGE[variant][1]
    client, url = _http_client(provider, garbage_server.port)
    try:
        with network_guard({("127.0.0.1", garbage_server.port)}) as guard:
            with pytest.raises(ModelError) as info:
                await client.create([user("What is the weather in Paris?")], tools=ToolLog().tools())
        assert not guard.blocked
    finally:
        await client.close()
    assert garbage_server.hits >= 1
    assert isinstance(info.value, expected), f"{provider}/{variant}: got {info.value!r}"


@integration
@pytest.mark.parametrize("provider_name", ["openai", "ollama"])
async def test_closed_port_is_unreachable(provider_name: str, network_guard) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    client, url = _http_client(provider_name, port)
    try:
        with network_guard({("127.0.0.1", port)}) as guard:
            with pytest.raises(ModelUnreachableError) as info:
                await client.create([user("Say hi.")])
        assert not guard.blocked
    finally:
        await client.close()
    assert url in str(info.value), str(info.value)


# -- what llama_cpp.server does with OpenAI's json_schema response_format ---------------------
@integration
async def test_llama_cpp_server_rejects_openai_json_schema_form(llama_server, network_guard) -> None:
    """llama_cpp.server 0.3.x accepts only response_format type text/json_object (+ "schema").

    OpenAI's ``{"type": "json_schema", "json_schema": {...}}`` fails the server's request
    validation and comes back as HTTP 500 (not 4xx), which the client reports as
    ModelUnreachableError naming the server. Hence ``json_schema_style="llamacpp"`` for it.
    """
    from alina.models.openai_compat import OpenAICompatClient

    client = OpenAICompatClient(
        base_url=llama_server.base_url,
        json_schema_style="json_schema",
        model="smollm2",
        n_ctx=4096,
        max_tokens=64,
        timeout_s=120.0,
    )
    try:
        with network_guard({("127.0.0.1", llama_server.port)}):
            with pytest.raises(ModelUnreachableError) as info:
                await client.create([user("What is the weather in Paris?")], tools=ToolLog().tools())
            # The same client without a schema (a text turn) works: only the format is refused.
            ok = await client.create([user("Say hi.")], extra_create_args={"max_tokens": 8})
    finally:
        await client.close()
    message = str(info.value)
    assert "HTTP 500" in message and llama_server.base_url in message, message
    assert "json_object" in message, message
    assert isinstance(ok.content, str)
