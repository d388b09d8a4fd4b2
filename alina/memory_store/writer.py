"""Batched, asynchronous event writes to Postgres: recording never stalls a model call.

``await writer.emit(kind, payload)`` only puts the event on a bounded queue; a background task
copies events into the ``events`` table in batches (one ``COPY`` per batch) as soon as a batch
is full or ``flush_interval_s`` after its first event. Guarantees:

* back pressure, never loss: when the queue is full ``emit`` waits for room; nothing is dropped.
* an event taken off the queue stays in memory until its batch is committed; when Postgres is
  gone the batch is kept and retried (with backoff) in the background.
* ``flush()`` and ``close()`` write everything emitted before the call, and raise
  StoreUnavailableError (the unwritten events kept, so a later ``flush()`` retries them) when
  the server cannot be reached.
* while Postgres is down and the queue is full, ``emit`` raises StoreUnavailableError instead
  of waiting forever: the caller knows the event was not accepted.

A batch committed just as the connection drops (the commit's reply lost) is written again on
retry: delivery is at-least-once in that narrow case.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alina._secrets import mask_secrets
from alina.memory_store.runs import RunStore, StoreUnavailableError

__all__ = ["Event", "EventWriter"]

log = logging.getLogger(__name__)
_COPY = "COPY events (run_id, kind, payload, created_at) FROM STDIN"
# One encoder for every event: json.dumps with options builds a new encoder per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True, slots=True)
class Event:
    """One event as it will be written: ``payload`` is already serialised JSON."""

    kind: str
    payload: str
    run_id: str | None
    created_at: datetime


class EventWriter:
    """Writes events to ``events`` in batches from a background task (see module docstring).

    ``max_queue`` bounds the events waiting in memory; ``batch_size`` events go in one COPY;
    a partial batch is written ``flush_interval_s`` after its first event. Use as
    ``async with EventWriter(store) as w: await w.emit(...)`` or call :meth:`close`.
    The store (its pool) is the caller's to open and close.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        max_queue: int = 10_000,
        batch_size: int = 5_000,
        flush_interval_s: float = 0.2,
        retry_backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError(f"max_queue and batch_size must be >= 1 (got {max_queue}, {batch_size})")
        self._store = store
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_queue)
        self._taken: list[Event] = []  # off the queue, not yet committed; only the front is deleted
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._backoff = retry_backoff_s
        self._lock = asyncio.Lock()  # one writer at a time: the background task, flush or close
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._error: BaseException | None = None
        self.written = 0
        """Events committed by this writer so far."""

    # -- public API ------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Events accepted but not yet committed (queued or in a batch being retried)."""
        return self._queue.qsize() + len(self._taken)

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed write, or None once a write succeeded again."""
        return self._error

    async def start(self) -> None:
        """Start the background task (``emit`` starts it too)."""
        if self._closing:
            raise RuntimeError("EventWriter is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alina-event-writer")

    async def emit(
        self, kind: str, payload: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> None:
        """Accept one event for writing; waits while the queue is full (back pressure).

        Raises ValueError for a payload that is not JSON (or holds NUL characters, which
        Postgres rejects), StoreUnavailableError when Postgres is down and the queue is full,
        RuntimeError after :meth:`close`.
        """
        event = _event(kind, payload, run_id)
        if self._task is None or self._closing:
            await self.start()
        try:
            self._queue.put_nowait(event)  # the common case: no task, no suspension
            return
        except asyncio.QueueFull:
            pass
        while True:
            if self._error is not None and self._queue.full():
                raise StoreUnavailableError(
                    f"event not accepted: {self.pending} events are waiting and the last write failed "
                    f"({self._error})"
                )
            try:
                await asyncio.wait_for(self._queue.put(event), timeout=0.25)
                return
            except TimeoutError:
                continue  # still full: re-check whether the writer is failing

    async def flush(self) -> int:
        """Write every event accepted so far; returns how many this call committed.

        Raises StoreUnavailableError if Postgres cannot be reached; the events stay pending.
        """
        async with self._lock:
            self._take(None)
            return await self._write_taken()

    async def close(self) -> None:
        """Stop the background task and write everything pending (same errors as :meth:`flush`).

        After a failed close the events are still pending: call ``close()`` (or ``flush()``)
        again once Postgres is back.
        """
        self._closing = True
        async with self._lock:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            self._take(None)
            await self._write_taken()

    async def __aenter__(self) -> EventWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- internals -------------------------------------------------------------------------------
    def _take(self, limit: int | None) -> None:
        """Move queued events to ``_taken`` (synchronously: a cancellation cannot lose one)."""
        while (limit is None or len(self._taken) < limit) and not self._queue.empty():
            self._taken.append(self._queue.get_nowait())

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            if not self._taken:
                first = await self._queue.get()
                self._taken.append(first)  # no await in between: never lost to a cancellation
                self._take(self._batch_size)
                if len(self._taken) < self._batch_size and self._interval > 0:
                    await asyncio.sleep(self._interval)
                    self._take(self._batch_size)
            async with self._lock:
                try:
                    await self._write_taken()
                    failed = False
                except Exception:  # recorded in self._error; flush()/close() raise it to a caller
                    failed = True
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
            else:
                delay = self._backoff[0]

    async def _write_taken(self) -> int:
        """Commit ``_taken`` batch by batch (caller holds the lock); raises on the first failure."""
        written = 0
        while self._taken:
            batch = self._taken[: self._batch_size]
            try:
                await self._copy(batch)
            except Exception as exc:
                if self._error is None:
                    log.warning("event writes failing (%s); %d events kept for retry", exc, self.pending)
                self._error = exc
                raise
            del self._taken[: len(batch)]
            written += len(batch)
            self.written += len(batch)
        if self._error is not None:
            log.info("event writes recovered")
        self._error = None
        return written

    async def _copy(self, batch: list[Event]) -> None:
        async with self._store._connection() as conn, conn.transaction():
            async with conn.cursor().copy(_COPY) as copy:
                for e in batch:
                    await copy.write_row((e.run_id, e.kind, e.payload, e.created_at))


def _event(kind: str, payload: Mapping[str, Any] | None, run_id: str | None) -> Event:
    if not kind or not isinstance(kind, str):
        raise ValueError(f"event kind must be a non-empty string (got {kind!r})")
    try:
        text = _encode(mask_secrets(payload or {}))  # the one way into the events table: no secret passes
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {kind!r}: payload is not JSON-serialisable ({exc})") from None
    if "\\u0000" in text or "\x00" in kind or (run_id and "\x00" in run_id):
        raise ValueError(f"event {kind!r}: NUL characters cannot be stored in Postgres")
    return Event(kind, text, run_id, datetime.now(UTC))
