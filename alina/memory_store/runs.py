"""Durable record of team runs and their messages, in Postgres (psycopg 3, async pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import PoolTimeout

from alina._secrets import mask_secrets, redact_text
from alina.memory_store.checkpoints import (
    ResumePoint,
    TurnCommit,
    drop_uncommitted,
    read_resume_point,
    write_turn,
)
from alina.memory_store.database import (
    Database,
    Repository,
    StoreUnavailableError,
    redact_dsn,
    unavailable_error,
)
from alina.memory_store.database import is_connection_error as _is_connection_error

__all__ = ["FINAL_STATUSES", "RunBusyError", "RunStore", "RunTotals", "StoreUnavailableError", "redact_dsn"]

FINAL_STATUSES = ("completed", "failed", "stopped")


@dataclass(frozen=True)
class RunTotals:
    """How a run ended and what it cost: what :meth:`RunStore.finish_run` records."""

    status: str
    """One of :data:`FINAL_STATUSES`."""
    turns: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    error: str | None = None


_RUN_COLUMNS = (
    "id, task, status, started_at, finished_at, config_json, turns, model_calls, tool_calls, "
    "prompt_tokens, completion_tokens, wall_s, error, resumes"
)


# A run is interrupted when it says `running` but no process holds its run lock (see run_lock:
# the 64-bit advisory key shows in pg_locks as classid = high 32 bits, objid = low 32 bits).
_INTERRUPTED = (
    "(r.status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' "
    "AND l.classid = ((hashtextextended(r.id, 0) >> 32) & 4294967295)::bigint::oid "
    "AND l.objid = (hashtextextended(r.id, 0) & 4294967295)::bigint::oid AND l.objsubid = 1))"
)


class RunBusyError(RuntimeError):
    """Another live process holds the run (it is executing or resuming it right now)."""


class RunStore(Repository):
    """Runs and messages in Postgres, on a shared :class:`Database` (or a private one built from
    a DSN). ``open()`` opens the database if needed; ``close()`` closes it only if it is private.

    Usable as ``async with RunStore(dsn_or_db) as store: ...``.
    """

    def __init__(
        self,
        db: Database | str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        connect_timeout: int = 3,
        open_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
    ) -> None:
        """With a DSN, the pool options size the private database (a shared one has its own)."""
        super().__init__(
            db,
            min_size=min_size,
            max_size=max_size,
            connect_timeout=connect_timeout,
            open_timeout=open_timeout,
            acquire_timeout=acquire_timeout,
            name="alina-runs",
        )

    async def __aenter__(self) -> RunStore:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def create_run(self, run_id: str, task: str, config_json: dict[str, Any]) -> None:
        """Insert a new run with status ``running``; a duplicate ``run_id`` raises UniqueViolation.
        The task and config are stored with secrets masked (:mod:`alina._secrets`)."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO runs (id, task, status, config_json) VALUES (%s, %s, 'running', %s)",
                (run_id, redact_text(task), Jsonb(mask_secrets(config_json))),
            )

    async def add_message(
        self,
        run_id: str,
        seq: int,
        source: str,
        type: str,  # the column's name
        content: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_ms: float | None = None,
    ) -> None:
        """Record message ``seq`` of a run (secrets in ``content`` masked). Idempotent: a second
        write of the same seq is ignored."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO messages (run_id, seq, source, type, content, prompt_tokens, "
                "completion_tokens, latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id, seq) DO NOTHING",
                (
                    run_id,
                    seq,
                    source,
                    type,
                    redact_text(content),
                    prompt_tokens,
                    completion_tokens,
                    latency_ms,
                ),
            )

    async def add_routing_decision(
        self,
        run_id: str,
        seq: int,
        speaker: str | None,
        method: str,
        confidence: float,
        candidates: list[str],
        reason: str = "",
    ) -> None:
        """Record routing decision ``seq`` of a run (who speaks next, by which method, how sure,
        among which candidates, why). Idempotent: a second write of the same seq is ignored."""
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO routing_decisions (run_id, seq, speaker, method, confidence, candidates, "
                "reason) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, seq) DO NOTHING",
                (
                    run_id,
                    seq,
                    speaker,
                    method,
                    min(1.0, max(0.0, float(confidence))),
                    Jsonb(candidates),
                    reason,
                ),
            )

    async def finish_run(self, run_id: str, totals: RunTotals) -> None:
        """Set a run's final status, counters and ``finished_at`` (``error`` stored redacted).

        Raises ValueError for a status not in FINAL_STATUSES, LookupError for an unknown run.
        """
        t = totals
        if t.status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)} (got {t.status!r})")
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE runs SET status = %s, finished_at = now(), turns = %s, model_calls = %s, "
                "tool_calls = %s, prompt_tokens = %s, completion_tokens = %s, wall_s = %s, "
                "error = %s WHERE id = %s",
                (
                    t.status,
                    t.turns,
                    t.model_calls,
                    t.tool_calls,
                    t.prompt_tokens,
                    t.completion_tokens,
                    t.wall_s,
                    redact_text(t.error) if t.error else t.error,
                    run_id,
                ),
            )
            if cur.rowcount == 0:
                raise LookupError(f"no run with id {run_id!r}")

    async def commit_turn(self, commit: TurnCommit) -> None:
        """Persist one whole turn (messages, routing decisions, checkpoint, counters) atomically."""
        async with self._connection() as conn:
            await write_turn(conn, commit)

    async def resume_point(self, run_id: str) -> ResumePoint | None:
        """The latest checkpoint of a run (turn 0 when none was committed); None for an unknown run."""
        async with self._connection() as conn:
            return await read_resume_point(conn, run_id)

    async def reopen_run(self, run_id: str) -> None:
        """Mark a run ``running`` again for a resume (clears the end state, counts the resume) and
        drop the rows of the turn that was cut, which the resume redoes."""
        async with self._connection() as conn, conn.transaction():
            await drop_uncommitted(conn, run_id)
            await conn.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, "
                "resumes = resumes + 1 WHERE id = %s",
                (run_id,),
            )

    @asynccontextmanager
    async def run_lock(self, run_id: str) -> AsyncIterator[None]:
        """Hold the run for this process (a session advisory lock on a dedicated connection).

        A second process asking for the same run gets RunBusyError at once. A process that dies,
        even by SIGKILL, drops its connection and Postgres releases the lock with it.
        """
        async with self._connection() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (run_id,))
            row = await cur.fetchone()
            await conn.commit()  # the lock is session-level; do not sit idle in a transaction
            if not (row and row[0]):
                raise RunBusyError(f"run {run_id} is being executed by another alina process right now")
            try:
                yield
            finally:
                try:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (run_id,))
                except psycopg.OperationalError:
                    # The session died (Postgres restarted mid-run) and its lock with it: nothing
                    # to release, and the run's own outcome must not be replaced by this error.
                    if not conn.broken:
                        raise

    async def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run's row as a dict plus ``messages`` (dicts ordered by seq) and ``decisions`` (its
        order actions and ALINA's answer, by message seq) and ``evaluations`` (the scores of its
        messages) and ``tool_data`` (structured tool results by call id), or None if unknown."""
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_RUN_COLUMNS}, {_INTERRUPTED} AS interrupted FROM runs r WHERE id = %s", (run_id,)
            )
            run = await cur.fetchone()
            if run is None:
                return None
            await cur.execute(
                "SELECT seq, source, type, content, prompt_tokens, completion_tokens, latency_ms, "
                "created_at FROM messages WHERE run_id = %s ORDER BY seq",
                (run_id,),
            )
            run["messages"] = await cur.fetchall()
            await cur.execute(
                "SELECT message_seq, agent, decision, created_at FROM decisions WHERE run_id = %s "
                "ORDER BY message_seq NULLS LAST, id",
                (run_id,),
            )
            run["decisions"] = await cur.fetchall()
            await cur.execute(
                "SELECT message_seq, agent, name, score, passed, details, prompt_version, model "
                "FROM evaluations WHERE run_id = %s ORDER BY message_seq, name",
                (run_id,),
            )
            run["evaluations"] = await cur.fetchall()
            await cur.execute(
                "SELECT call_id, data FROM tool_calls WHERE run_id = %s AND call_id IS NOT NULL "
                "AND data IS NOT NULL ORDER BY id",
                (run_id,),
            )
            run["tool_data"] = {r["call_id"]: r["data"] for r in await cur.fetchall()}
            return run

    async def list_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        """Up to ``limit`` runs, newest first, each with a ``message_count``."""
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_RUN_COLUMNS}, (SELECT count(*) FROM messages m WHERE m.run_id = r.id) "
                f"AS message_count, {_INTERRUPTED} AS interrupted, "
                "(SELECT o.job_name FROM job_occurrences o WHERE o.run_id = r.id) AS job FROM runs r "
                "ORDER BY started_at DESC, id LIMIT %s",
                (limit,),
            )
            return await cur.fetchall()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        if not self.db.is_open:
            raise RuntimeError("RunStore is not open: call `await store.open()` first")
        try:
            async with self.db.connection() as conn:
                yield conn
        except (PoolTimeout, psycopg.OperationalError) as exc:
            if not _is_connection_error(exc):
                raise
            raise unavailable_error(self._dsn, exc) from exc
