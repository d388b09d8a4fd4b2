"""A bounded local file of events that could not be written to Postgres (JSON lines).

While Postgres is away, :class:`~alina.memory_store.writer.EventWriter` appends its events to
its own spool file ``<spool_dir>/events-<pid>-<token>.jsonl`` and flushes them, in order, once
the server is back. The file is locked (``fcntl.flock``) for as long as its writer lives, so a
file nobody holds was left by a process that died: the next writer to start claims it (the lock
decides which one) and flushes it. Each line carries the event's unique id; the flush inserts
with ``ON CONFLICT (event_id) DO NOTHING``, so a file flushed twice (a crash mid-flush) still
stores every event once.

File operations are small synchronous system calls on the event loop (an append is one
``write``), which is cheaper than a thread hop for the batch sizes involved.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from alina.monitoring import metrics

__all__ = ["Event", "SpoolFile", "claim_orphans"]

log = logging.getLogger(__name__)
_PATTERN = "events-*.jsonl"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class Event(NamedTuple):
    """One event as it will be written: ``payload`` is already serialised JSON; ``event_id`` (a
    UUID, given at emit) makes a second write of the same event a no-op. A named tuple (built
    once per event at emit, ~0.6 µs cheaper than a frozen dataclass), whose fields are in the
    column order of the writer's COPY, so it is written as the row itself."""

    run_id: str | None
    kind: str
    payload: str
    created_at: datetime
    event_id: str


class SpoolFile:
    """One locked spool file: appended to by its owner, read and committed front to back.

    ``pending`` counts the events after the committed offset; ``size`` is the file's length,
    which ``max_bytes`` bounds (an append that would pass it is dropped and counted).
    """

    def __init__(self, path: Path, fd: int, max_bytes: int) -> None:
        self.path = path
        self._fd = fd
        self.max_bytes = max_bytes
        self.size = os.fstat(fd).st_size
        self.offset = 0
        """Bytes already flushed to Postgres (from the start of the file)."""
        self.pending = _count_lines(fd, self.size)
        self.dropped = 0
        self._full_logged = False

    @classmethod
    def create(cls, directory: Path, max_bytes: int) -> SpoolFile:
        """A new, locked spool file of this process in ``directory`` (created if needed)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"events-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new name: nobody else can hold it
        return cls(path, fd, max_bytes)

    def append(self, events: list[Event]) -> int:
        """Append ``events`` in order; returns how many fit. The rest is dropped (counted in
        ``alina_events_dropped_total{reason="spool_full"}``, logged once per filling)."""
        lines: list[bytes] = []
        size = self.size
        for i, e in enumerate(events):
            line = (
                _encode(
                    {
                        "id": e.event_id,
                        "run_id": e.run_id,
                        "kind": e.kind,
                        "at": e.created_at.isoformat(),
                        "payload": e.payload,
                    }
                )
                + "\n"
            ).encode()
            if size + len(line) > self.max_bytes:
                self._drop(len(events) - i)
                break
            lines.append(line)
            size += len(line)
        if lines:
            data = b"".join(lines)
            written = 0
            while written < len(data):  # os.write may write less than asked
                written += os.write(self._fd, data[written:])
            self.size = size
            self.pending += len(lines)
        return len(lines)

    def read(self, limit: int) -> tuple[list[Event], int]:
        """Up to ``limit`` events after the committed offset, and the offset after them.
        Unreadable lines (a line cut by a crash) are skipped and counted as spool_corrupt."""
        events: list[Event] = []
        offset = self.offset
        chunk = 1 << 20
        while len(events) < limit and offset < self.size:
            data = os.pread(self._fd, min(chunk, self.size - offset), offset)
            end = data.rfind(b"\n")
            if end < 0:
                if offset + len(data) < self.size:  # one line longer than the chunk: read more
                    chunk *= 2
                    continue
                end = len(data) - 1  # the last line has no newline (cut): try it anyway
            for raw in data[: end + 1].splitlines(keepends=True):
                if len(events) >= limit:
                    break
                offset += len(raw)
                event = _parse(raw, self.path)
                if event is not None:
                    events.append(event)
        return events, offset

    def commit(self, offset: int, count: int) -> None:
        """Mark everything before ``offset`` (``count`` events) as written to Postgres. When the
        whole file is written it is emptied, so its bound applies to the next outage afresh."""
        self.offset = offset
        self.pending = max(0, self.pending - count)
        if self.offset >= self.size:
            os.ftruncate(self._fd, 0)
            self.size = self.offset = self.pending = 0
            self._full_logged = False

    def remove(self) -> None:
        """Delete the file and release its lock (its events are all written, or none exist)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        """Release the lock; the file (if not empty) stays for the next start to flush."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _drop(self, n: int) -> None:
        self.dropped += n
        metrics.EVENTS_DROPPED.labels(reason="spool_full").inc(n)
        if not self._full_logged:
            log.error(
                "event spool %s is full (%d bytes, resilience.spool_max_mb): events are dropped "
                "until Postgres is back",
                self.path,
                self.max_bytes,
            )
            self._full_logged = True


def claim_orphans(directory: Path, max_bytes: int) -> list[SpoolFile]:
    """Lock the spool files in ``directory`` that no live writer holds (left by a process that
    died), oldest first. A file locked by someone else is skipped; empty ones are deleted."""
    claimed: list[SpoolFile] = []
    if not directory.is_dir():
        return claimed
    paths = sorted(directory.glob(_PATTERN), key=lambda p: _mtime(p))
    for path in paths:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            continue  # flushed and removed by another process meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The lock holder may have removed the file between our open and our lock: only the
            # file that is still at this path is ours to flush (and to delete).
            if os.fstat(fd).st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            continue
        spool = SpoolFile(path, fd, max(max_bytes, os.fstat(fd).st_size))
        if spool.pending == 0:
            spool.remove()
            continue
        log.info("claimed event spool %s (%d events) left by a stopped process", path, spool.pending)
        claimed.append(spool)
    return claimed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _count_lines(fd: int, size: int) -> int:
    count, offset = 0, 0
    last = b"\n"
    while offset < size:
        data = os.pread(fd, min(1 << 20, size - offset), offset)
        count += data.count(b"\n")
        offset += len(data)
        last = data[-1:]
    return count + (0 if last == b"\n" else 1)  # a cut last line counts; read() skips it


def _parse(raw: bytes, path: Path) -> Event | None:
    try:
        d = json.loads(raw)
        return Event(
            d["run_id"], str(d["kind"]), str(d["payload"]), datetime.fromisoformat(d["at"]), str(d["id"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        metrics.EVENTS_DROPPED.labels(reason="spool_corrupt").inc()
        log.warning("skipped an unreadable line of event spool %s: %s", path, exc)
        return None
