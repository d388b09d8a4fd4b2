"""Batched, asynchronous event writes to Postgres: recording never stalls a model call.

``await writer.emit(kind, payload)`` only puts the event on a bounded queue; a background task
copies events into the ``events`` table in batches (one ``COPY`` per batch) as soon as a batch
is full or ``flush_interval_s`` after its first event. Guarantees:

* back pressure, never silent loss: when the queue is full ``emit`` waits for room.
* an event taken off the queue stays in memory until its batch is committed; when Postgres is
  gone the batch is kept and retried (with backoff) in the background.
* with a spool directory (``spool_dir``, as ``alina`` runs it): while Postgres is down, the
  events go to a bounded local file (:mod:`alina.memory_store.spool`, at most ``spool_max_bytes``;
  what does not fit is dropped and counted in ``alina_events_dropped_total{reason="spool_full"}``)
  and later events follow them there, so order is kept; the file is flushed into Postgres, in
  order, once it is back. Spool files left by a process that died are flushed by the next
  writer that starts (one writer per file: the file lock decides).
* ``flush()`` and ``close()`` write everything emitted before the call, and raise
  StoreUnavailableError when the server cannot be reached (the unwritten events kept: in memory
  without a spool, so a later ``flush()`` retries them; in the spool file with one).
* without a spool, while Postgres is down and the queue is full, ``emit`` raises
  StoreUnavailableError instead of waiting forever: the caller knows the event was not accepted.

Exactly once: every event gets a unique id at emit. A batch written for the first time is
copied straight in; a batch written again (a retry after a failure, whose commit reply may have
been lost, or a spool flush) is inserted with ``ON CONFLICT (event_id) DO NOTHING``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, wait_exponential

from alina._secrets import mask_secrets
from alina.memory_store.runs import RunStore, StoreUnavailableError
from alina.memory_store.spool import Event, SpoolFile, claim_orphans
from alina.monitoring import metrics

if TYPE_CHECKING:
    from alina.config import AlinaConfig

__all__ = ["Event", "EventWriter"]

log = logging.getLogger(__name__)
# The columns in the order of Event's fields: an Event is the row.
_COPY = "COPY events (run_id, kind, payload, created_at, event_id) FROM STDIN"
# Events that may be in the table already go through a temporary table and ON CONFLICT; n keeps
# the batch's order for the ids the INSERT assigns.
_STAGE = (
    "CREATE TEMP TABLE alina_events_in (run_id text, kind text, payload jsonb, created_at timestamptz, "
    "event_id uuid, n bigserial) ON COMMIT DROP"
)
_COPY_STAGED = "COPY alina_events_in (run_id, kind, payload, created_at, event_id) FROM STDIN"
_MERGE = (
    "INSERT INTO events (run_id, kind, payload, created_at, event_id) SELECT run_id, kind, payload, "
    "created_at, event_id FROM alina_events_in ORDER BY n ON CONFLICT (event_id) DO NOTHING"
)


def _payload_encoder() -> Callable[[Any], str]:
    """The payloads' JSON: compact, text as is, no NaN. ``JSONEncoder.encode`` builds a new C
    encoder on every call (~0.8 µs of its ~1.9 µs for a bench payload), so this builds it once,
    with the arguments ``JSONEncoder.iterencode`` gives it; the encoded payload is
    ``mask_secrets``' fresh copy, which holds no cycles to check for. Falls back to ``encode``
    where the C accelerator is missing."""
    options = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if c_make_encoder is None:
        return options.encode
    chunks = c_make_encoder(None, options.default, encode_basestring, None, ":", ",", False, False, False)
    return lambda obj: "".join(chunks(obj, 0))


_encode = _payload_encoder()


class EventWriter:
    """Writes events to ``events`` in batches from a background task (see module docstring).

    ``max_queue`` bounds the events waiting in memory; ``batch_size`` events go in one COPY;
    a partial batch is written ``flush_interval_s`` after its first event. ``spool_dir``: where
    events wait while Postgres is down (None: in memory only), at most ``spool_max_bytes``.
    Use as ``async with EventWriter(store) as w: await w.emit(...)`` or call :meth:`close`.
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
        spool_dir: Path | None = None,
        spool_max_bytes: int = 64 << 20,
    ) -> None:
        if max_queue < 1 or batch_size < 1:
            raise ValueError(f"max_queue and batch_size must be >= 1 (got {max_queue}, {batch_size})")
        if spool_max_bytes < 1:
            raise ValueError(f"spool_max_bytes must be >= 1 (got {spool_max_bytes})")
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
        self._spool_dir = spool_dir
        self._spool_max = spool_max_bytes
        self._spool: SpoolFile | None = None  # this writer's file, created at the first outage
        self._orphans: list[SpoolFile] = []  # files of dead processes, claimed at start
        self._claimed = False
        self._retry_at = 0.0  # monotonic time before which a failing store is not tried again
        self.written = 0
        """Events committed by this writer so far (spooled ones included once flushed)."""

    @classmethod
    def from_config(cls, store: RunStore, config: AlinaConfig) -> EventWriter:
        """The writer ``alina`` runs with: while Postgres is away, events wait in
        ``<data_dir>/spool``, at most ``resilience.spool_max_mb``."""
        return cls(
            store,
            spool_dir=config.data_dir() / "spool",
            spool_max_bytes=int(config.resilience.spool_max_mb * 2**20),
        )

    # -- public API ------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Events accepted but not yet committed (queued, in a batch being retried, or spooled,
        including the spool files of dead processes this writer claimed)."""
        spooled = sum(s.pending for s in (*self._orphans, self._spool) if s is not None)
        return self._queue.qsize() + len(self._taken) + spooled

    @property
    def dropped(self) -> int:
        """Events dropped because the spool file was full."""
        return self._spool.dropped if self._spool is not None else 0

    @property
    def spool_path(self) -> Path | None:
        """This writer's spool file, once an outage created it."""
        return self._spool.path if self._spool is not None else None

    @property
    def last_error(self) -> BaseException | None:
        """The error of the last failed write, or None once a write succeeded again."""
        return self._error

    async def start(self) -> None:
        """Start the background task (``emit`` starts it too) and claim the spool files that dead
        processes left, which the task flushes first."""
        if self._closing:
            raise RuntimeError("EventWriter is closed")
        if not self._claimed and self._spool_dir is not None:
            self._claimed = True
            self._orphans = claim_orphans(self._spool_dir, self._spool_max)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="alina-event-writer")

    async def emit(
        self, kind: str, payload: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> None:
        """Accept one event for writing; waits while the queue is full (back pressure).

        Raises ValueError for a payload that is not JSON (or holds NUL characters, which
        Postgres rejects), StoreUnavailableError when Postgres is down, the queue is full and
        there is no spool, RuntimeError after :meth:`close`.
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
            if self._error is not None and self._queue.full() and self._spool_dir is None:
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
        """Write every event accepted so far (spooled ones too); returns how many this call
        committed.

        Raises StoreUnavailableError if Postgres cannot be reached; the events stay pending.
        """
        async with self._lock:
            self._take(None)
            return await self._write_or_spool()

    async def close(self) -> None:
        """Stop the background task and write everything pending (same errors as :meth:`flush`).

        After a failed close the events are still pending: call ``close()`` (or ``flush()``)
        again once Postgres is back. With a spool they are in its file, which the next process
        to start flushes if this one exits first.
        """
        self._closing = True
        async with self._lock:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            self._take(None)
            try:
                await self._write_or_spool()
            except StoreUnavailableError as exc:
                if self._spool is None:
                    raise
                raise StoreUnavailableError(
                    f"{exc}; {self.pending} events kept in {self._spool.path}, written by the next "
                    "alina process that starts"
                ) from exc
            for spool in (*self._orphans, self._spool):
                if spool is not None:
                    spool.remove()  # all written
            self._orphans, self._spool = [], None

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

    def _backlog(self) -> bool:
        """Spooled events wait (this writer's or a dead process's)."""
        return bool(self._orphans) or (self._spool is not None and self._spool.pending > 0)

    async def _run(self) -> None:
        # tenacity's exponential wait gives the delays (first, doubled, capped); the loop itself is
        # ours, not a tenacity retry: between attempts it must go on taking new events and parking
        # them in the spool, which wrapping one write call in a retry would block.
        backoff = wait_exponential(multiplier=self._backoff[0], min=self._backoff[0], max=self._backoff[1])
        attempts = RetryCallState(None, None, (), {})  # type: ignore[arg-type]  # only attempt_number is read
        while True:
            if not self._taken and self._backlog():
                # Spooled events wait for the store: wake up for new events and for the retry.
                await asyncio.sleep(max(0.01, min(self._interval, self._retry_at - time.monotonic())))
                self._take(self._batch_size)
            elif not self._taken:
                first = await self._queue.get()
                self._taken.append(first)  # no await in between: never lost to a cancellation
                if 1 + self._queue.qsize() < self._batch_size and self._interval > 0:
                    await asyncio.sleep(self._interval)
                # The rest of the batch stays queued until its COPY is open (see _next_batch).
            async with self._lock:
                if self._waiting_for_store():
                    self._spill()  # the store is down: park the batch on disk, behind the earlier ones
                    continue
                try:
                    await self._write_or_spool()
                    failed = False
                except Exception:  # recorded in self._error; flush()/close() raise it to a caller
                    failed = True
            if failed:
                delay = backoff(attempts)
                attempts.attempt_number += 1
                self._retry_at = time.monotonic() + delay
                if self._spool_dir is None:
                    await asyncio.sleep(delay)
            else:
                attempts.attempt_number = 1

    def _waiting_for_store(self) -> bool:
        """The store failed, events can wait in the spool, and the next retry is not due yet."""
        return self._error is not None and self._spool_dir is not None and time.monotonic() < self._retry_at

    async def _write_or_spool(self) -> int:
        """Write the spooled events (dead processes' first, then ours), then ``_taken``, in order
        (caller holds the lock). On failure the unwritten ``_taken`` go to the spool if there is
        one, and the error is raised."""
        written = 0
        try:
            while self._orphans:
                written += await self._write_spool(self._orphans[0])
                self._orphans.pop(0).remove()
            if self._spool is not None:
                written += await self._write_spool(self._spool)
            written += await self._write_taken()
        except Exception as exc:
            if self._error is None:
                log.warning("event writes failing (%s); %d events kept for retry", exc, self.pending)
            self._error = exc
            self._spill()
            raise
        if self._error is not None:
            log.info("event writes recovered")
        self._error = None
        return written

    async def _write_spool(self, spool: SpoolFile) -> int:
        written = 0
        while spool.pending:
            events, offset = spool.read(self._batch_size)
            if events:
                await self._insert(events, staged=True)
            spool.commit(offset, len(events))
            written += len(events)
            self.written += len(events)
        if written and spool is not self._spool:
            log.info("flushed %d events from the spool file %s", written, spool.path)
        return written

    def _spill(self) -> None:
        """Move ``_taken`` and the queue to this writer's spool file (no-op without a spool dir)."""
        if self._spool_dir is None:
            return
        self._take(None)
        if not self._taken:
            return
        if self._spool is None:
            self._spool = SpoolFile.create(self._spool_dir, self._spool_max)
            log.warning("Postgres away: events go to the spool file %s until it is back", self._spool.path)
        self._spool.append(self._taken)
        self._taken.clear()

    async def _write_taken(self) -> int:
        """Commit ``_taken`` batch by batch (caller holds the lock); raises on the first failure."""
        written = 0
        while self._taken:
            # After a failure a batch may be in the table already (its commit reply lost).
            n = await self._insert(None, staged=self._error is not None)
            del self._taken[:n]
            written += n
            self.written += n
        return written

    def _next_batch(self) -> list[Event]:
        """The front batch of ``_taken``, topped up from the queue. Called once the COPY is open:
        events that arrived meanwhile still join the batch, and the room this frees in the queue
        lets ``emit`` callers run while the server works through the rows, not while the
        connection is being checked and the COPY started (measured: bench/memory.py)."""
        self._take(self._batch_size)
        return self._taken[: self._batch_size]

    async def _insert(self, batch: list[Event] | None, *, staged: bool) -> int:
        """One transaction: COPY ``batch`` (None: :meth:`_next_batch`, taken once the COPY is
        open) into ``events``; ``staged``: skip events already there. Returns how many."""
        async with self._store._connection() as conn, conn.transaction():
            if staged:
                await conn.execute(_STAGE)
            async with conn.cursor().copy(_COPY_STAGED if staged else _COPY) as copy:
                if batch is None:
                    batch = self._next_batch()
                for event in batch:
                    await copy.write_row(event)
            if staged:
                await conn.execute(_MERGE)
        metrics.EVENTS_PERSISTED.inc(len(batch))
        return len(batch)


def _event(kind: str, payload: Mapping[str, Any] | None, run_id: str | None) -> Event:
    if not kind or not isinstance(kind, str):
        raise ValueError(f"event kind must be a non-empty string (got {kind!r})")
    try:
        text = _encode(mask_secrets(payload or {}))  # the one way into the events table: no secret passes
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event {kind!r}: payload is not JSON-serialisable ({exc})") from None
    if "\\u0000" in text or "\x00" in kind or (run_id and "\x00" in run_id):
        raise ValueError(f"event {kind!r}: NUL characters cannot be stored in Postgres")
    return Event(run_id, kind, text, datetime.now(UTC), _next_id())


class _Ids:
    """Event ids: a random per-process prefix (80 bits) and a sequence number, in UUID form.
    Sequential ids land at the right edge of the unique index, where random UUIDs would touch a
    random page per insert (the writer was ~30% slower with uuid4)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)  # a forked child must not repeat our ids

    def reset(self) -> None:
        h = secrets.token_hex(10)
        self.prefix = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"
        self.count = itertools.count(1)

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.count):012x}"


_next_id = _Ids()
