"""A model client that wraps another one and changes only what it overrides.

The agent layer puts small, single-purpose wrappers in front of an agent's client (the tool gate,
the answer check). Each overrides ``create`` (and ``create_stream`` when it must); everything
else, including attributes such as ``provider``, ``model`` or ``listener``, reaches the inner
client. The inner client belongs to the team and is closed there, never by a wrapper.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema

from alina.models._stream import stream_create

__all__ = ["WrappedClient"]


class WrappedClient(ChatCompletionClient):
    """Delegates every call to ``inner``; ``create_stream`` runs :meth:`create` with a token sink
    (see :mod:`alina.models._stream`), so a subclass that only overrides ``create`` is honoured
    on both paths and the provider beneath still streams."""

    def __init__(self, inner: ChatCompletionClient) -> None:
        self.inner = inner

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        return await self.inner.create(messages, **kwargs)

    async def create_stream(
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        async with contextlib.aclosing(stream_create(lambda: self.create(messages, **kwargs))) as stream:
            async for item in stream:
                yield item

    async def close(self) -> None:
        """The inner client belongs to the team (closed there)."""

    def actual_usage(self) -> RequestUsage:
        return self.inner.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.inner.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.inner.count_tokens(messages, tools=tools)

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        return self.inner.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self.inner.model_info

    def __getattr__(self, name: str) -> Any:  # provider, model, temperature, listener, ...
        return getattr(self.inner, name)
