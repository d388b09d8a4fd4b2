"""The ``alert_actions`` table: every action the observer took or proposes, durably.

The observer writes a row when it fires an action and updates it as the action moves on
(pending -> applied -> undone, pending -> cancelled, ...). An operator decides a pending one
with ``alina alerts approve|reject ID`` (:func:`decide`): the row becomes ``approved`` or
``rejected``, and the observer that proposed it (``owner``, host:pid) reads the decision on its
next evaluation (:func:`decisions`) and applies the action or drops it. When that observer stops,
its still-pending rows are cancelled (:func:`cancel_owner`), so nothing waits for a process that
is gone. Every function here opens one short connection; store failures in the observer's path
are logged and never stop it.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import psycopg

__all__ = [
    "ActionDecisionError",
    "cancel_owner",
    "decide",
    "decisions",
    "insert",
    "list_actions",
    "owner",
    "update",
]

log = logging.getLogger(__name__)

_COLUMNS = (
    "id",
    "alert_id",
    "rule",
    "action",
    "reason",
    "status",
    "detail",
    "owner",
    "decided_by",
    "decided_at",
    "created_at",
    "updated_at",
)


class ActionDecisionError(Exception):
    """An operator's decision cannot be recorded: no such action, or it is not pending."""


def owner() -> str:
    """This process's name in ``alert_actions.owner``."""
    return f"{socket.gethostname()}:{os.getpid()}"


async def _conn(dsn: str, timeout_s: float) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout_s)))


async def insert(dsn: str, rec: Any, alert_id: int | None, who: str, timeout_s: float = 3.0) -> int | None:
    """Store an :class:`~alina.monitoring.actions.ActionRecord`; its row id, or None on failure."""
    try:
        async with await _conn(dsn, timeout_s) as conn:
            cur = await conn.execute(
                "INSERT INTO alert_actions (alert_id, rule, action, reason, status, detail, owner) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (alert_id, rec.rule, rec.action, rec.reason[:1000], rec.status, rec.detail[:1000], who),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else None
    except (psycopg.Error, OSError) as exc:
        log.warning("action %s of alert %s not stored (%s)", rec.action, rec.rule, type(exc).__name__)
        return None


async def update(dsn: str, rec: Any, timeout_s: float = 3.0) -> None:
    """Write ``rec``'s status and detail to its row (no-op without a row)."""
    if getattr(rec, "db_id", None) is None:
        return
    try:
        async with await _conn(dsn, timeout_s) as conn:
            await conn.execute(
                "UPDATE alert_actions SET status = %s, detail = %s, updated_at = now() WHERE id = %s",
                (rec.status, rec.detail[:1000], rec.db_id),
            )
    except (psycopg.Error, OSError) as exc:
        log.warning("action %s: status %s not stored (%s)", rec.db_id, rec.status, type(exc).__name__)


async def decisions(dsn: str, ids: list[int], timeout_s: float = 3.0) -> dict[int, tuple[str, str]]:
    """``{id: (approved|rejected, decided_by)}`` for the rows of ``ids`` an operator decided."""
    if not ids:
        return {}
    try:
        async with await _conn(dsn, timeout_s) as conn:
            cur = await conn.execute(
                "SELECT id, status, coalesce(decided_by, '') FROM alert_actions "
                "WHERE id = ANY(%s) AND status IN ('approved', 'rejected')",
                (ids,),
            )
            return {int(r[0]): (str(r[1]), str(r[2])) for r in await cur.fetchall()}
    except (psycopg.Error, OSError) as exc:
        log.warning("observer: cannot read approvals (%s)", type(exc).__name__)
        return {}


async def cancel_owner(dsn: str, who: str, why: str, timeout_s: float = 3.0) -> int:
    """Cancel ``who``'s rows still waiting (pending, or approved but not applied); how many."""
    try:
        async with await _conn(dsn, timeout_s) as conn:
            cur = await conn.execute(
                "UPDATE alert_actions SET status = 'cancelled', detail = %s, updated_at = now() "
                "WHERE owner = %s AND status IN ('pending', 'approved')",
                (why[:1000], who),
            )
            return cur.rowcount
    except (psycopg.Error, OSError) as exc:
        log.warning("observer: pending actions not cancelled (%s)", type(exc).__name__)
        return 0


async def decide(
    conn: psycopg.AsyncConnection[Any], action_id: int, approve: bool, by: str
) -> dict[str, Any]:
    """Record an operator's decision on a pending action; the updated row. Raises
    :class:`ActionDecisionError` when there is no such action or it is not pending."""
    status = "approved" if approve else "rejected"
    cur = await conn.execute(
        f"UPDATE alert_actions SET status = %s, decided_by = %s, decided_at = now(), updated_at = now() "
        f"WHERE id = %s AND status = 'pending' RETURNING {', '.join(_COLUMNS)}",
        (status, by, action_id),
    )
    row = await cur.fetchone()
    if row is not None:
        return dict(zip(_COLUMNS, row, strict=True))
    cur = await conn.execute("SELECT status FROM alert_actions WHERE id = %s", (action_id,))
    found = await cur.fetchone()
    if found is None:
        raise ActionDecisionError(f"no alert action with id {action_id} (see `alina alerts list`)")
    raise ActionDecisionError(f"alert action {action_id} is {found[0]}, not pending: nothing to decide")


async def list_actions(
    conn: psycopg.AsyncConnection[Any], *, limit: int = 20, waiting_only: bool = False
) -> list[dict[str, Any]]:
    """The newest actions (pending and approved ones first), at most ``limit``."""
    where = "WHERE status IN ('pending', 'approved') " if waiting_only else ""
    cur = await conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM alert_actions {where}"
        "ORDER BY (status IN ('pending', 'approved')) DESC, id DESC LIMIT %s",
        (limit,),
    )
    return [dict(zip(_COLUMNS, r, strict=True)) for r in await cur.fetchall()]
