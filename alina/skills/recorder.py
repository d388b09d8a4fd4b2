"""Every tool call recorded in memory: the recorder protocol, secret masking, a Postgres recorder.

The loader's tool wrapper builds one :class:`ToolCallRecord` per call (arguments already
masked by :func:`mask_secrets`) and hands it to the configured :class:`ToolCallRecorder`.
Recording fails open: a recorder error is logged and the tool result still reaches the agent.
The run a call belongs to comes from :func:`run_scope` (a context variable), so tools built
once per team are attributed to whichever run is calling them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

# Re-exported: the rules live in alina._secrets so that code below the skills (config, stores) shares them.
from alina._secrets import MASK, is_secret_name, mask_secrets, redact_text

__all__ = [
    "MASK",
    "InMemoryToolCallRecorder",
    "PostgresToolCallRecorder",
    "ToolCallRecord",
    "ToolCallRecorder",
    "call_scope",
    "current_call_id",
    "current_run_id",
    "is_secret_name",
    "mask_secrets",
    "run_scope",
    "summarize_result",
]

logger = logging.getLogger(__name__)

SUMMARY_CHARS = 500
_RUN_ID: ContextVar[str | None] = ContextVar("alina_run_id", default=None)
_CALL_ID: ContextVar[str | None] = ContextVar("alina_tool_call_id", default=None)
Outcome = Literal["ok", "error", "timeout"]


def current_run_id() -> str | None:
    """The run id set by the innermost :func:`run_scope`, or None outside any run."""
    return _RUN_ID.get()


@contextmanager
def run_scope(run_id: str | None) -> Iterator[None]:
    """Attribute every tool call made inside this block (and tasks it starts) to ``run_id``."""
    token = _RUN_ID.set(run_id)
    try:
        yield
    finally:
        _RUN_ID.reset(token)


def current_call_id() -> str | None:
    """The id the model gave the tool call being executed (:func:`call_scope`), or None."""
    return _CALL_ID.get()


@contextmanager
def call_scope(call_id: str | None) -> Iterator[None]:
    """The tool call executed inside this block has ``call_id`` (the agent adapter sets it)."""
    token = _CALL_ID.set(call_id)
    try:
        yield
    finally:
        _CALL_ID.reset(token)


def summarize_result(result: Any, limit: int = SUMMARY_CHARS) -> str:
    """The first ``limit`` characters of ``str(result)`` (with ``...`` when cut), secrets
    redacted first (:func:`~alina._secrets.redact_text`) so a cut cannot leave half a key."""
    text = redact_text(result if isinstance(result, str) else repr(result))
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call as stored in the ``tool_calls`` table."""

    run_id: str | None
    agent: str
    tool: str
    arguments: dict[str, Any]
    """Already masked (see :func:`mask_secrets`)."""
    result_summary: str
    duration_ms: float
    outcome: Outcome
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    call_id: str | None = None
    """The id the model gave the call (pairs it with the run's stored tool-call messages)."""
    data: dict[str, Any] | None = None
    """A :class:`~alina.skills._contract.ToolOutput`'s structured result, secrets masked."""


@runtime_checkable
class ToolCallRecorder(Protocol):
    """Where tool calls are recorded. Implementations should not raise for a lost record."""

    async def record(self, call: ToolCallRecord) -> None:
        """Store one tool call."""
        ...


class InMemoryToolCallRecorder:
    """Keeps records in a list (notebooks, tests, a team run without Postgres)."""

    def __init__(self) -> None:
        self.calls: list[ToolCallRecord] = []

    async def record(self, call: ToolCallRecord) -> None:
        """Append ``call`` to :attr:`calls`."""
        self.calls.append(call)


_INSERT = (
    "INSERT INTO tool_calls (run_id, agent, tool, arguments, result_summary, duration_ms, outcome, "
    "created_at, call_id, data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


class PostgresToolCallRecorder:
    """Writes tool calls to the Postgres table ``tool_calls`` (migration 0004_tool_calls.sql).

    ``db`` is the process's shared :class:`~alina.memory_store.database.Database`, or a DSN for
    a private one that ``open()`` connects and migrates; use as ``async with``. A failed insert
    is logged and dropped (the tool call itself is not affected).
    """

    def __init__(self, db: Any, *, max_size: int = 2, timeout_s: float = 5.0) -> None:
        from alina.memory_store.database import Database

        self._owns = not isinstance(db, Database)
        self.db: Database = (
            Database(
                db,
                max_size=max_size,
                connect_timeout=max(1, int(timeout_s)),
                open_timeout=timeout_s,
                acquire_timeout=timeout_s,
                name="alina-tool-calls",
            )
            if isinstance(db, str)
            else db
        )
        self.dropped = 0
        """How many records could not be written."""

    async def open(self) -> PostgresToolCallRecorder:
        """Open the database (a no-op for a shared one that is open: it migrated already)."""
        await self.db.open()
        return self

    async def close(self) -> None:
        """Close the database if it is this recorder's own (idempotent)."""
        if self._owns:
            await self.db.close()

    async def __aenter__(self) -> PostgresToolCallRecorder:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _pool(self) -> Any:
        return self.db.pool if self.db.is_open else None

    async def record(self, call: ToolCallRecord) -> None:
        """Insert ``call``; on any database error log a warning and count it in :attr:`dropped`."""
        from psycopg.types.json import Jsonb

        if self._pool is None:
            raise RuntimeError("PostgresToolCallRecorder.open() was not called")
        row = asdict(call)
        try:
            async with self._pool.connection() as conn:
                await conn.execute(
                    _INSERT,
                    (
                        row["run_id"],
                        row["agent"],
                        row["tool"],
                        Jsonb(row["arguments"]),
                        row["result_summary"],
                        row["duration_ms"],
                        row["outcome"],
                        row["created_at"],
                        row["call_id"],
                        None if row["data"] is None else Jsonb(row["data"]),
                    ),
                )
        except Exception as exc:  # recording fails open
            self.dropped += 1
            logger.warning("tool call %s/%s not recorded: %s", call.agent, call.tool, exc)

    async def recent(self, run_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """The latest ``limit`` tool calls (of ``run_id`` when given), newest first."""
        from psycopg.rows import dict_row

        if self._pool is None:
            raise RuntimeError("PostgresToolCallRecorder.open() was not called")
        where, params = ("WHERE run_id = %s", [run_id]) if run_id else ("", [])
        async with self._pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT run_id, agent, tool, arguments, result_summary, duration_ms, outcome, created_at "
                f"FROM tool_calls {where} ORDER BY id DESC LIMIT %s",
                [*params, limit],
            )
            return list(await cur.fetchall())
