"""Base AutoGen model client for every provider: one contract, one tool protocol.

Subclasses implement only :meth:`JsonToolClient._complete` (one chat completion, optionally
constrained to a JSON schema, that must respect a deadline) and :meth:`_count_text`. Everything
AutoGen-facing — tool calls, tool rounds, usage, token counting, timeouts — lives here once, so
all providers pass the same contract tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autogen_core import CancellationToken
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelFamily,
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from alina.models import _protocol as proto
from alina.models._errors import MalformedOutputError, ModelTimeoutError
from alina.models._guard import check_model_request
from alina.models._stream import TokenSink, current_token_sink, stream_create

MODEL_INFO: ModelInfo = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "structured_output": True,
    "family": ModelFamily.UNKNOWN,
    "multiple_system_messages": True,
}


@dataclass
class Completion:
    """What a backend returns for one call."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"] = "stop"


class JsonToolClient(ChatCompletionClient, ABC):
    """A ChatCompletionClient whose tool calls are grammar-constrained JSON (see _protocol)."""

    provider: str = "?"
    streams: bool = False
    """Whether :meth:`_complete_streaming` generates text piece by piece (else the whole text
    arrives at once and ``create_stream`` yields it in one piece)."""

    def __init__(
        self,
        *,
        model: str,
        n_ctx: int = 4096,
        max_tokens: int = 256,
        temperature: float = 0.0,
        timeout_s: float = 60.0,
        tool_policy: Literal["first", "model"] = "first",
        seed: int = 42,
        repeat_penalty: float = 1.0,
    ) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.tool_policy = tool_policy
        self.seed = seed
        self.repeat_penalty = repeat_penalty
        self._total = RequestUsage(prompt_tokens=0, completion_tokens=0)
        self._last = RequestUsage(prompt_tokens=0, completion_tokens=0)

    # -- what a backend provides -------------------------------------------------------------
    @abstractmethod
    async def _complete(
        self,
        chat: list[proto.ChatDict],
        *,
        schema: dict[str, Any] | None,
        max_tokens: int,
        deadline: float,
    ) -> Completion:
        """One completion; must give up by ``deadline`` (time.monotonic())."""

    async def _complete_streaming(
        self, chat: list[proto.ChatDict], *, max_tokens: int, deadline: float, sink: TokenSink
    ) -> Completion:
        """A plain text completion whose pieces go to ``sink`` as they are generated; the
        returned Completion holds the whole text. Providers that cannot stream complete at once."""
        return await self._complete(chat, schema=None, max_tokens=max_tokens, deadline=deadline)

    @abstractmethod
    def _count_text(self, text: str) -> int:
        """Tokens in ``text``, computed locally (never a download)."""

    # -- the AutoGen contract ----------------------------------------------------------------
    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        check_model_request(self.provider)
        specs = proto.tool_specs(tools)
        choice: str
        if isinstance(tool_choice, Tool):
            specs = [s for s in specs if s.name == tool_choice.name] or proto.tool_specs([tool_choice])
            choice = "required"
        else:
            choice = tool_choice
        kind = proto.turn_kind(messages, bool(specs), choice, self.tool_policy)
        chat = proto.to_chat(messages)
        schema: dict[str, Any] | None = None
        if kind == "tool":
            specs = proto.preselect(specs, messages)
            schema = proto.tool_call_schema(specs)
        elif kind == "choice":
            schema = proto.choice_schema(specs)
        elif json_output is True:
            schema = {"type": "object"}
        elif isinstance(json_output, type) and issubclass(json_output, BaseModel):
            schema = json_output.model_json_schema()
        if kind != "text":
            # Appended after the history so the prompt prefix stays stable across turns.
            chat.append({"role": "system", "content": proto.tool_instruction(specs)})
        max_tokens = int(extra_create_args.get("max_tokens", self.max_tokens))
        timeout = float(extra_create_args.get("timeout", self.timeout_s))
        deadline = time.monotonic() + timeout
        sink = current_token_sink() if kind == "text" and schema is None and self.streams else None
        if sink is not None:  # inside create_stream: the text goes out piece by piece as well
            call = self._complete_streaming(chat, max_tokens=max_tokens, deadline=deadline, sink=sink)
        else:
            call = self._complete(chat, schema=schema, max_tokens=max_tokens, deadline=deadline)
        task = asyncio.ensure_future(call)
        if cancellation_token is not None:
            cancellation_token.link_future(task)
        try:
            done = await asyncio.wait_for(task, timeout=timeout)
        except TimeoutError:
            raise ModelTimeoutError(
                f"{self.provider}:{self.model} did not answer within {timeout:g}s"
            ) from None
        usage = RequestUsage(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens)
        self._last = usage
        self._total = RequestUsage(
            prompt_tokens=self._total.prompt_tokens + usage.prompt_tokens,
            completion_tokens=self._total.completion_tokens + usage.completion_tokens,
        )
        if kind == "text" and schema is None:
            return CreateResult(
                finish_reason=done.finish_reason, content=done.text.strip(), usage=usage, cached=False
            )
        if kind == "text":  # json_output: hand the JSON text back as the content
            return CreateResult(
                finish_reason=done.finish_reason, content=done.text, usage=usage, cached=False
            )
        try:
            parsed = proto.parse_structured(done.text, specs)
        except MalformedOutputError:
            if done.finish_reason == "length":
                raise MalformedOutputError(
                    f"{self.provider}:{self.model} tool call cut off at max_tokens={max_tokens}: "
                    f"{done.text[:200]!r}"
                ) from None
            raise
        if isinstance(parsed, str):
            return CreateResult(finish_reason="stop", content=parsed, usage=usage, cached=False)
        return CreateResult(finish_reason="function_calls", content=parsed, usage=usage, cached=False)

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        """Text turns of a streaming provider yield each generated piece as it comes (see
        :mod:`alina.models._stream`), then the result; other turns yield the whole text once."""
        call = lambda: self.create(  # noqa: E731
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )
        async with contextlib.aclosing(stream_create(call)) as stream:
            async for item in stream:
                yield item

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return self._last

    def total_usage(self) -> RequestUsage:
        return self._total

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        per_message = 4  # role markers of a chat template, an estimate that errs high
        n = sum(self._count_text(m["content"]) + per_message for m in proto.to_chat(messages))
        for s in proto.tool_specs(tools):
            n += self._count_text(json.dumps({"name": s.name, "parameters": s.parameters}))
        return n

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        return self.n_ctx - self.count_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:
        return {"vision": False, "function_calling": True, "json_output": True}

    @property
    def model_info(self) -> ModelInfo:
        return MODEL_INFO


def estimate_tokens(text: str) -> int:
    """Tokenizer-free estimate for remote servers: about 4 UTF-8 bytes per token."""
    return math.ceil(len(text.encode("utf-8")) / 4)
