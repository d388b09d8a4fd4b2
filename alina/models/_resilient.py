"""The governed, resilient client every agent talks to.

``ResilientClient`` wraps a provider client. Every attempt holds a governor slot (at most N
model calls in flight per model server, admitted by the agent's priority class) and every
failure is handled by its class (see ``_errors``): a timeout is retried up to ``retries`` times;
an unreachable server sends the call to the fallback model at once; malformed output gets one
repair (the call is re-asked with the parse error appended); a context overflow drops the
oldest non-system messages once and asks again. The fallback model gets one attempt handled
the same way (no timeout retries). When nothing is left, ``on_exhausted(agent, reason)`` is
called (the system's safe mode) and :class:`ModelUnavailableError` is raised. Every attempt is
counted in the metrics registry and reported to an optional listener (the run loop records
those as ``model_call`` events).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelInfo,
    RequestUsage,
    SystemMessage,
)
from autogen_core.tools import Tool, ToolSchema

from alina.models._cache import ResponseCache, client_identity
from alina.models._errors import (
    ContextOverflowError,
    MalformedOutputError,
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
    ModelUnreachableError,
    RealModelCallBlocked,
)
from alina.models._governor import Governor, Priority, priority_for
from alina.models._stream import stream_create
from alina.monitoring import metrics

log = logging.getLogger(__name__)

Outcome = Literal[
    "ok",
    "timeout",
    "unreachable",
    "malformed",
    "repaired",
    "overflow",
    "fallback",
    "exhausted",
    "error",
    "cached",
]


@dataclass(frozen=True)
class CallRecord:
    """One model call attempt, as the run loop and metrics see it.

    ``outcome``: ok (answered), repaired (answered after a repair), fallback (the fallback model
    answered), timeout / unreachable / malformed / overflow / error (this attempt failed so),
    exhausted (not an attempt: the call failed for good), cached (answered from the cache).
    """

    agent: str
    provider: str
    model: str
    seconds: float
    prompt_tokens: int
    completion_tokens: int
    outcome: Outcome
    tool_call: bool


Listener = Callable[[CallRecord], None]
OnExhausted = Callable[[str, str], Awaitable[None] | None]

_FAILURES: tuple[tuple[type[ModelError], Outcome], ...] = (
    (ModelTimeoutError, "timeout"),
    (ModelUnreachableError, "unreachable"),
    (MalformedOutputError, "malformed"),
    (ContextOverflowError, "overflow"),
)


_PREFER_FALLBACK: dict[str, str] = {}
"""Agents whose calls go to their fallback model first (agent -> why); set by the observer's
``fallback_model`` action, read by every ResilientClient of the process on each call."""


def prefer_fallback(agent: str, reason: str) -> None:
    """From the next call on, ``agent``'s calls try its fallback model first (the primary second)."""
    _PREFER_FALLBACK[agent] = reason


def clear_fallback_preference(agent: str) -> bool:
    """Back to primary-first for ``agent``; returns whether a preference was set."""
    return _PREFER_FALLBACK.pop(agent, None) is not None


def prefers_fallback(agent: str) -> bool:
    """Whether ``agent``'s calls try the fallback model first."""
    return agent in _PREFER_FALLBACK


def _failure(exc: ModelError) -> Outcome:
    return next((o for cls, o in _FAILURES if isinstance(exc, cls)), "error")


def trim_history(messages: Sequence[LLMMessage]) -> list[LLMMessage]:
    """The messages without the oldest half of the non-system ones (the latest always stays)."""
    idx = [i for i, m in enumerate(messages) if not isinstance(m, SystemMessage)]
    drop = set(idx[: len(idx) // 2])
    return [m for i, m in enumerate(messages) if i not in drop]


def with_repair_note(messages: Sequence[LLMMessage], error: str) -> list[LLMMessage]:
    """The messages plus a system note quoting the parse error, for the one repair attempt.

    The note goes before a trailing tool result, so the kind of turn (answer after results)
    does not change.
    """
    note = SystemMessage(
        content=f"Your previous reply could not be used: {error[:300]}. Reply again with exactly the "
        "requested JSON and nothing else."
    )
    out = list(messages)
    at = len(out) - 1 if out and isinstance(out[-1], FunctionExecutionResultMessage) else len(out)
    out.insert(at, note)
    return out


class ResilientClient(ChatCompletionClient):
    """Governor slot, error handling by class, fallback and accounting for one agent."""

    def __init__(
        self,
        agent: str,
        primary: ChatCompletionClient,
        *,
        retries: int = 2,
        fallback: ChatCompletionClient | None = None,
        governor: Governor | None = None,
        priority: Priority | None = None,
        listener: Listener | None = None,
        on_exhausted: OnExhausted | None = None,
        cache: ResponseCache | None = None,
        prompt_version: str = "0",
    ) -> None:
        """``retries``: extra attempts of the primary after timeouts. ``priority``: the governor
        class (default: from the agent's name, see ``priority_for``). ``on_exhausted(agent,
        reason)`` (sync or async) runs before :class:`ModelUnavailableError` is raised."""
        self.agent = agent
        self.cache = cache
        self.prompt_version = prompt_version
        self.primary = primary
        self.retries = retries
        self.fallback = fallback
        self.governor = governor or Governor(4)
        self.priority: Priority = priority or priority_for(agent)
        self.listener = listener
        self.on_exhausted = on_exhausted

    def _record(
        self, client: ChatCompletionClient, seconds: float, result: CreateResult | None, outcome: Outcome
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
        self, client: ChatCompletionClient, messages: Sequence[LLMMessage], kwargs: dict[str, Any]
    ) -> CreateResult:
        """One call on ``client`` inside a governor slot; a ModelError is recorded by class."""
        start = time.monotonic()
        try:
            async with self.governor.slot(self.priority):
                return await client.create(messages, **kwargs)
        except ModelError as exc:
            self._record(client, time.monotonic() - start, None, _failure(exc))
            raise

    async def _on(
        self,
        client: ChatCompletionClient,
        messages: Sequence[LLMMessage],
        kwargs: dict[str, Any],
        *,
        retries: int,
        fallback: bool,
    ) -> CreateResult:
        """Answer from ``client``: timeouts retried ``retries`` times, one repair, one trim.

        Raises the last ModelError when the client cannot answer (the caller moves on).
        """
        msgs, timeouts, repaired, trimmed = list(messages), 0, False, False
        while True:
            start = time.monotonic()
            try:
                result = await self._attempt(client, msgs, kwargs)
            except ModelTimeoutError as exc:
                if timeouts >= retries:
                    raise ModelTimeoutError(f"{exc} (after {retries} retries)") from exc
                timeouts += 1
                metrics.observe_retry(self.agent, "timeout")
                continue
            except MalformedOutputError as exc:
                if repaired:
                    raise
                repaired, msgs = True, with_repair_note(msgs, str(exc))
                metrics.observe_retry(self.agent, "repair")
                continue
            except ContextOverflowError:
                shorter = trim_history(msgs)
                if trimmed or len(shorter) == len(msgs):
                    raise
                trimmed, msgs = True, shorter
                metrics.observe_retry(self.agent, "trim")
                continue
            outcome: Outcome = "fallback" if fallback else "repaired" if repaired else "ok"
            self._record(client, time.monotonic() - start, result, outcome)
            return result

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
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
        started = time.monotonic()
        options = [("primary", self.primary, self.retries)]
        if self.fallback is not None:
            options.append(("fallback", self.fallback, 0))
            if prefers_fallback(self.agent):  # the observer moved this agent; the primary stays a backup
                options.reverse()
        failures: list[str] = []
        for role, client, retries in options:
            try:
                return await self._on(client, messages, kwargs, retries=retries, fallback=role == "fallback")
            except RealModelCallBlocked:
                raise
            except ModelError as exc:
                failures.append(f"{role} {_name(client)}: {type(exc).__name__}: {exc}")
        if self.fallback is None:
            failures.append("no fallback configured")
        reason = f"{self.agent}: no model answered ({'; '.join(failures)})"
        self._record(self.primary, time.monotonic() - started, None, "exhausted")
        await self._exhausted(reason)
        raise ModelUnavailableError(reason)

    async def _exhausted(self, reason: str) -> None:
        if self.on_exhausted is None:
            return
        try:
            pending = self.on_exhausted(self.agent, reason)
            if inspect.isawaitable(pending):
                await pending
        except Exception:  # the callback's failure must not hide the model failure
            log.exception("on_exhausted callback failed for agent %s", self.agent)

    async def create_stream(
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        async with contextlib.aclosing(stream_create(lambda: self.create(messages, **kwargs))) as stream:
            async for item in stream:
                yield item

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


def _name(client: ChatCompletionClient) -> str:
    return f"{getattr(client, 'provider', type(client).__name__)}:{getattr(client, 'model', '?')}"
