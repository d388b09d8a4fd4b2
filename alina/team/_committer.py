"""Turn commits written in order on a background task, riding out a Postgres outage.

The run loop hands every finished turn to :class:`TurnCommitter`. A background task writes the
commits one by one, in order. When a write fails because the store cannot be reached, the same
commit is retried with exponential backoff for up to ``outage_s`` seconds (a turn commit is
idempotent: every row is keyed, so a retry after a lost reply stores nothing twice). Meanwhile
the later turns wait in the bounded queue, in order: once it is full, ``put`` waits, so the run
slows down instead of dropping or reordering a turn. ``on_store_state(False, reason)`` is called
when the first write fails, ``on_store_state(True, "")`` when a write succeeds again (the caller
pauses orders in between: the run's state cannot be saved).

If the store is still away after ``outage_s``, or a write fails for another reason, that error
is final: it is raised by the next ``put`` or by ``close``, and no later turn is written, so the
last saved turn stays the run's checkpoint (``alina run --resume`` continues from it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import psycopg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from alina.memory_store.checkpoints import TurnCommit
from alina.memory_store.runs import StoreUnavailableError
from alina.monitoring import metrics

__all__ = ["StoreStateCallback", "TurnCommitter", "is_outage"]

logger = logging.getLogger(__name__)

StoreStateCallback = Callable[[bool, str], None]
"""``on_store_state(ok, reason)``: False + why when writes start failing, True when one succeeds."""


class _CommitSink(Protocol):
    async def commit_turn(self, commit: TurnCommit) -> None: ...


def is_outage(exc: BaseException) -> bool:
    """True for "the store cannot be reached right now" errors (worth retrying), False for errors
    a retry cannot fix (a bad statement, a constraint violation)."""
    return isinstance(exc, StoreUnavailableError | OSError | psycopg.OperationalError)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


class TurnCommitter:
    """Writes turn commits in order on a background task (see the module docstring).

    ``depth``: commits queued before ``put`` waits (back pressure). ``outage_s``: how long one
    write is retried while the store is unreachable. ``backoff_s``: first and longest pause
    between retries.
    """

    def __init__(
        self,
        sink: _CommitSink,
        *,
        outage_s: float,
        depth: int = 4,
        backoff_s: tuple[float, float] = (0.25, 5.0),
        on_store_state: StoreStateCallback | None = None,
    ) -> None:
        self._sink = sink
        self._outage_s = outage_s
        self._backoff = backoff_s
        self._on_store_state = on_store_state
        self._queue: asyncio.Queue[TurnCommit | None] = asyncio.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._down = False
        self.written = 0
        self.retries = 0
        """Failed write attempts that were retried (each outage adds its attempts)."""
        self._task = asyncio.create_task(self._loop(), name="alina-turn-committer")

    @property
    def failed(self) -> bool:
        """True once a write failed for good (no later commit is written)."""
        return self._error is not None

    async def put(self, commit: TurnCommit) -> None:
        """Queue ``commit``; waits while ``depth`` commits are queued. Raises the final write error."""
        if self._error is not None:
            raise self._error
        await self._queue.put(commit)

    async def close(self) -> None:
        """Wait until every queued commit is written (retries included); raise the final write error."""
        if not self._task.done():
            await self._queue.put(None)
            await self._task
        if self._error is not None:
            raise self._error

    async def call(self, write: Callable[[], Awaitable[Any]]) -> None:
        """Run another store write (e.g. the run's end) with the same outage retries; once a commit
        failed for good it is tried once only (the outage bound was already spent)."""
        if self._error is not None:
            await write()
            return
        await self._retrying(write)

    async def _loop(self) -> None:
        while (commit := await self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain without writing: never store a turn after a missing one
            t0 = time.perf_counter()
            try:
                await self._retrying(functools.partial(self._sink.commit_turn, commit))
            except Exception as exc:  # reported through put()/close()
                self._error = exc
                metrics.observe_checkpoint(0.0, ok=False)
                logger.error("turn %d of run %s was not saved: %s", commit.turn, commit.run_id, exc)
            else:
                self.written += 1
                metrics.observe_checkpoint(time.perf_counter() - t0, ok=True)

    async def _retrying(self, write: Callable[[], Awaitable[Any]]) -> None:
        """``write()``, retried with backoff while the store is unreachable, for ``outage_s``."""
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._outage_s),
            wait=wait_exponential(multiplier=self._backoff[0], min=self._backoff[0], max=self._backoff[1]),
            retry=retry_if_exception(is_outage),
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await write()
        except Exception as exc:
            self._state(False, _reason(exc))
            raise
        self._state(True, "")

    def _before_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        if not self._down:
            logger.warning(
                "store unreachable (%s): turns queue up in order and are retried for up to %gs",
                _reason(exc) if exc else "?",
                self._outage_s,
            )
        self._state(False, _reason(exc) if exc else "store unreachable")

    def _state(self, ok: bool, reason: str) -> None:
        """Report a change of the store's state (only changes: an outage is reported once)."""
        if ok == (not self._down):
            return  # no change: ok while up, or failing while already down
        self._down = not ok
        if ok:
            logger.info("store reachable again: queued turns are being saved")
        if self._on_store_state is None:
            return
        try:
            self._on_store_state(ok, reason)
        except Exception:  # a broken callback must not stop the commits
            logger.exception("on_store_state callback failed")
