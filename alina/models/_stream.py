"""Token streaming through the client stack, without changing how a call is made.

A model call passes through several clients (answer check, tool gate, resilience with its
cache, retries and fallback, the provider). Rather than each of them re-implementing
``create_stream``, streaming is a side channel: :func:`stream_create` runs the ordinary
``create`` call in a task with a *token sink* set in its context, and a provider that can
stream (the embedded llama.cpp client) hands every piece of text it generates for a plain
text turn to that sink while it generates. ``stream_create`` yields those pieces as they
arrive and then the call's :class:`CreateResult` — the checked, retried, possibly replaced
answer, which is what the agent keeps. So everything ``create`` does (governor slot, cache,
timeouts, retries, fallback, the answer check) still applies, and a consumer that compares
the streamed text with the final content sees when the final answer superseded it (a retry
after a partial answer, or the answer check's regeneration or digest).

Tool and JSON turns never stream (their text is grammar-constrained JSON, not prose); a call
answered without streaming (cache hit, a provider that cannot stream) yields its whole text once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

from autogen_core.models import CreateResult

__all__ = ["TokenSink", "current_token_sink", "no_token_sink", "stream_create"]

TokenSink = Callable[[str], None]
"""Receives each piece of generated text, on the event loop thread."""

_SINK: contextvars.ContextVar[TokenSink | None] = contextvars.ContextVar("alina_token_sink", default=None)


def current_token_sink() -> TokenSink | None:
    """Where a provider should send the text it generates for this call (None: don't stream)."""
    return _SINK.get()


@contextlib.contextmanager
def no_token_sink() -> Iterator[None]:
    """Calls made inside do not stream (e.g. the answer check's regeneration: its text is not
    shown piece by piece, the checked answer replaces the streamed one at the end)."""
    reset = _SINK.set(None)
    try:
        yield
    finally:
        _SINK.reset(reset)


async def stream_create(
    call: Callable[[], Awaitable[CreateResult]],
) -> AsyncGenerator[str | CreateResult, None]:
    """Run ``call()`` (a ``create``) with a token sink; yield each streamed piece, then the result.

    When nothing was streamed, the result's text (if any) is yielded once before the result, as
    AutoGen's ``create_stream`` contract expects. Closing the generator early cancels the call.
    """
    queue: asyncio.Queue[str] = asyncio.Queue()
    streamed = False

    async def run() -> CreateResult:
        _SINK.set(queue.put_nowait)  # this task's own context copy
        return await call()

    task = asyncio.ensure_future(run())
    getter: asyncio.Future[str] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                streamed = True
                yield getter.result()
                continue
            getter.cancel()
            break
        while not queue.empty():  # pieces that arrived with the end of the call
            streamed = True
            yield queue.get_nowait()
        result = task.result()
    finally:
        if getter is not None and not getter.done():
            getter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if not streamed and isinstance(result.content, str) and result.content:
        yield result.content
    yield result
