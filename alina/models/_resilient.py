"""The governed, resilient client every agent talks to.

``ResilientClient`` wraps a provider client and adds, in this order: the shared concurrency cap
(the governor: at most N model calls at once across all agents), a timeout on every call, up to
``retries`` retries of a *timed-out* call, then one try on the fallback model. Anything else
(a server that is down, garbage output) is not retried blindly: it surfaces as a ModelError.
Every attempt is reported to the metrics registry and to an optional listener (the run loop
counts model calls and tokens through it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage, ModelInfo, RequestUsage
from autogen_core.tools import Tool, ToolSchema

from alina.models._cache import ResponseCache, client_identity
from alina.models._errors import ModelError, ModelTimeoutError
from alina.monitoring import metrics


@dataclass(frozen=True)
class CallRecord:
    """One model call attempt, as the run loop and metrics see it."""

    agent: str
    provider: str
    model: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    outcome: Literal["ok", "timeout", "error", "fallback", "cached"]
    tool_call: bool


Listener = Callable[[CallRecord], None]


class Governor:
    """Caps how many model calls run at once (shared by every agent of a team)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._sem = asyncio.Semaphore(limit)

    async def __aenter__(self) -> None:
        await self._sem.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


class ResilientClient(ChatCompletionClient):
    """Timeout, retries on timeout, fallback, concurrency cap and accounting for one agent."""

    def __init__(
        self,
        agent: str,
        primary: ChatCompletionClient,
        *,
        retries: int = 2,
        fallback: ChatCompletionClient | None = None,
        governor: Governor | None = None,
        listener: Listener | None = None,
        cache: ResponseCache | None = None,
        prompt_version: str = "0",
    ) -> None:
        self.agent = agent
        self.cache = cache
        self.prompt_version = prompt_version
        self.primary = primary
        self.retries = retries
        self.fallback = fallback
        self.governor = governor or Governor(4)
        self.listener = listener

    def _record(
        self, client: ChatCompletionClient, seconds: float, result: CreateResult | None, outcome: Any
    ) -> None:
        usage = result.usage if result else RequestUsage(prompt_tokens=0, completion_tokens=0)
        rec = CallRecord(
            agent=self.agent,
            # getattr: any ChatCompletionClient may be wrapped (tests wrap scripted clients)
            provider=getattr(client, "provider", type(client).__name__),
            model=str(getattr(client, "model", "?")),
            seconds=seconds,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            outcome=outcome,
            tool_call=bool(result and not isinstance(result.content, str)),
        )
        if outcome != "cached":  # a cache hit is not a model call (the cache counts its hits)
            metrics.observe_model_call(
                rec.agent,
                rec.provider,
                rec.model,
                rec.seconds,
                rec.prompt_tokens,
                rec.completion_tokens,
                outcome=rec.outcome,
            )
        if self.listener is not None:
            self.listener(rec)

    async def _attempt(
        self, client: ChatCompletionClient, outcome_ok: str, *args: Any, **kwargs: Any
    ) -> CreateResult:
        start = time.monotonic()
        try:
            async with self.governor:
                result = await client.create(*args, **kwargs)
        except ModelTimeoutError:
            self._record(client, time.monotonic() - start, None, "timeout")
            raise
        except ModelError:
            self._record(client, time.monotonic() - start, None, "error")
            raise
        self._record(client, time.monotonic() - start, result, outcome_ok)
        return result

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:  # type: ignore[override]
        """Answer from the cache when an identical deterministic call was made, else the model."""
        key = None
        if self.cache is not None and getattr(self.primary, "temperature", None) == 0:
            key = self.cache.key(
                agent=self.agent,
                prompt_version=self.prompt_version,
                client=client_identity(self.primary),
                messages=messages,
                tools=kwargs.get("tools", ()),
                tool_choice=kwargs.get("tool_choice", "auto"),
                json_output=kwargs.get("json_output"),
                extra={k: v for k, v in (kwargs.get("extra_create_args") or {}).items() if k != "timeout"},
            )
            hit = await self.cache.get(key)
            if hit is not None:
                self._record(self.primary, 0.0, hit, "cached")
                return hit
        result = await self._call(messages, **kwargs)
        if key is not None and self.cache is not None:
            await self.cache.set(key, result)
        return result

    async def _call(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        last: ModelTimeoutError | None = None
        for _ in range(self.retries + 1):
            try:
                return await self._attempt(self.primary, "ok", messages, **kwargs)
            except ModelTimeoutError as exc:
                last = exc
        if self.fallback is not None:
            return await self._attempt(self.fallback, "fallback", messages, **kwargs)
        assert last is not None
        raise ModelTimeoutError(f"{last} (after {self.retries} retries, no fallback configured)")

    async def create_stream(  # type: ignore[override]
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        result = await self.create(messages, **kwargs)
        if isinstance(result.content, str) and result.content:
            yield result.content
        yield result

    async def close(self) -> None:
        await self.primary.close()
        if self.fallback is not None:
            await self.fallback.close()

    def actual_usage(self) -> RequestUsage:
        return self.primary.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.primary.total_usage()

    def count_tokens(self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []) -> int:
        return self.primary.count_tokens(messages, tools=tools)

    def remaining_tokens(
        self, messages: Sequence[LLMMessage], *, tools: Sequence[Tool | ToolSchema] = []
    ) -> int:
        return self.primary.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> Any:
        return self.primary.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self.primary.model_info
