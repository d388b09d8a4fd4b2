"""Chat sessions in Postgres (migration 0017): a session is the ordered list of runs of one
console conversation. The runs themselves (messages, checkpoints) are in the run store; a
session only says which ones belong together, so `alina chat --resume` can reprint the
conversation and give the team its context back from the last run's checkpoint."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from alina.memory_store.runs import unavailable_error

__all__ = ["ChatSession", "ChatSessions", "SessionNotFound"]


class SessionNotFound(LookupError):
    """``--resume ID`` named no session (or there is none to resume)."""


@dataclass
class ChatSession:
    id: str
    title: str
    started_at: datetime
    updated_at: datetime
    reset_seq: int = 0
    runs: list[tuple[int, str]] = field(default_factory=list)
    """(seq, run_id), oldest first."""

    @property
    def context_runs(self) -> list[str]:
        """The runs after the last /reset: the team's context when the session resumes."""
        return [r for seq, r in self.runs if seq > self.reset_seq]


class ChatSessions:
    """Short connections per call (a chat makes a few calls per task)."""

    def __init__(self, dsn: str, *, connect_timeout: int = 3) -> None:
        self.dsn = dsn
        self.connect_timeout = max(2, connect_timeout)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=self.connect_timeout
            )
        except psycopg.OperationalError as exc:
            raise unavailable_error(self.dsn, exc) from None

    async def open(self) -> None:
        """Apply pending schema migrations (the session tables are 0017)."""
        from alina.memory_store import migrate

        async with await self._connect() as conn:
            await migrate(conn)

    async def create(self) -> ChatSession:
        sid = uuid.uuid4().hex[:12]
        async with await self._connect() as conn:
            cur = await conn.execute(
                "INSERT INTO chat_sessions (id) VALUES (%s) RETURNING started_at, updated_at", (sid,)
            )
            started, updated = await cur.fetchone()  # type: ignore[misc]
        return ChatSession(sid, "", started, updated)

    async def add_run(self, session: ChatSession, run_id: str, task: str) -> None:
        """Append ``run_id`` (already in ``runs``) to the session; the first task is its title."""
        seq = (session.runs[-1][0] if session.runs else 0) + 1
        title = session.title or " ".join(task.split())[:80]
        async with await self._connect() as conn:
            await conn.execute(
                "INSERT INTO chat_session_runs (session_id, seq, run_id) VALUES (%s, %s, %s)",
                (session.id, seq, run_id),
            )
            await conn.execute(
                "UPDATE chat_sessions SET updated_at = now(), title = %s WHERE id = %s", (title, session.id)
            )
        session.runs.append((seq, run_id))
        session.title = title

    async def reset(self, session: ChatSession) -> None:
        """/reset: the runs so far stay in the transcript but are no longer the team's context."""
        session.reset_seq = session.runs[-1][0] if session.runs else 0
        async with await self._connect() as conn:
            await conn.execute(
                "UPDATE chat_sessions SET reset_seq = %s, updated_at = now() WHERE id = %s",
                (session.reset_seq, session.id),
            )

    async def get(self, session_id: str | None) -> ChatSession:
        """The session ``session_id`` (a unique prefix is enough), or if None the latest one
        with at least one task (a chat left before its first task is not worth resuming)."""
        async with await self._connect() as conn:
            if session_id is None:
                cur = await conn.execute(  # the latest session that has a task
                    "SELECT id, title, started_at, updated_at, reset_seq FROM chat_sessions s "
                    "WHERE EXISTS (SELECT 1 FROM chat_session_runs r WHERE r.session_id = s.id) "
                    "ORDER BY updated_at DESC LIMIT 1"
                )
            else:
                cur = await conn.execute(
                    "SELECT id, title, started_at, updated_at, reset_seq FROM chat_sessions "
                    "WHERE id LIKE %s ORDER BY updated_at DESC LIMIT 2",
                    (session_id.replace("%", "").replace("_", "") + "%",),
                )
            rows = await cur.fetchall()
            if not rows:
                what = f"no chat session {session_id!r}" if session_id else "no chat session to resume yet"
                raise SessionNotFound(f"{what} (`alina chat --list` shows them)")
            if len(rows) > 1:
                raise SessionNotFound(f"{session_id!r} matches several sessions: give more of the id")
            sid, title, started, updated, reset_seq = rows[0]
            cur = await conn.execute(
                "SELECT seq, run_id FROM chat_session_runs WHERE session_id = %s ORDER BY seq", (sid,)
            )
            runs = [(int(s), str(r)) for s, r in await cur.fetchall()]
        return ChatSession(sid, title, started, updated, int(reset_seq), runs)

    async def list(self, limit: int = 20) -> list[dict[str, Any]]:
        """Sessions with at least one task, latest first."""
        async with await self._connect() as conn:
            cur = await conn.execute(
                "SELECT s.id, s.title, s.started_at, s.updated_at, count(r.run_id) "
                "FROM chat_sessions s JOIN chat_session_runs r ON r.session_id = s.id "
                "GROUP BY s.id ORDER BY s.updated_at DESC LIMIT %s",
                (limit,),
            )
            rows = await cur.fetchall()
        return [
            {"id": i, "title": t, "started_at": s, "updated_at": u, "runs": int(n)} for i, t, s, u, n in rows
        ]
