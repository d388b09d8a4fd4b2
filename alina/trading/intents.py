"""Order intents: every order is recorded with its client order id BEFORE it is sent.

Statuses: ``pending`` (recorded, maybe not sent) and ``unknown`` (sent, reply lost) are *open*;
reconciliation asks the exchange for the client order id and turns them into ``placed`` or
``not_placed``. ``rejected`` means the exchange refused it. An intent is never sent twice.

:class:`PgIntentStore` keeps intents (and paper-account snapshots) in Postgres (migration
0003); :class:`MemoryIntentStore` is the same contract in memory, for unit tests.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alina.memory_store.database import Database, Repository, redact_dsn
from alina.trading.orders import Order, OrderRequest

__all__ = [
    "OPEN_STATUSES",
    "DuplicateRequest",
    "Intent",
    "IntentStore",
    "MemoryIntentStore",
    "PgIntentStore",
]

IntentStatus = Literal["pending", "unknown", "placed", "rejected", "not_placed"]
OPEN_STATUSES = ("pending", "unknown")
_ACTIVE = ("pending", "unknown", "placed")
_COLUMNS = (
    "client_order_id, request_id, mode, exchange, symbol, side, type, amount, price, status, "
    "exchange_order_id, order_status, filled, average, error"
)


class DuplicateRequest(Exception):
    """An active intent with the same request id exists; ``existing`` is it."""

    def __init__(self, existing: Intent) -> None:
        self.existing = existing
        super().__init__(f"request {existing.request_id!r} already has order {existing.client_order_id}")


@dataclass
class Intent:
    """One row of ``order_intents``."""

    client_order_id: str
    request_id: str | None
    mode: str
    exchange: str
    symbol: str
    side: str
    type: str
    amount: float
    price: float | None
    status: IntentStatus = "pending"
    exchange_order_id: str | None = None
    order_status: str | None = None
    filled: float | None = None
    average: float | None = None
    error: str | None = None

    @classmethod
    def for_request(cls, req: OrderRequest, mode: str, exchange: str, request_id: str | None) -> Intent:
        """A new pending intent for ``req``."""
        return cls(
            req.client_order_id,
            request_id,
            mode,
            exchange,
            req.symbol,
            req.side,
            req.type,
            req.amount,
            req.price,
        )

    @property
    def is_open(self) -> bool:
        """True while the outcome is not known (pending or unknown)."""
        return self.status in OPEN_STATUSES


class IntentStore(Protocol):
    """Where intents live. Every method is a single atomic write or read."""

    async def record(self, intent: Intent) -> None:
        """Insert a pending intent; DuplicateRequest if its request id is already active."""
        ...

    async def update(
        self, client_order_id: str, status: IntentStatus, order: Order | None = None, error: str | None = None
    ) -> None:
        """Set status (and the order's id, status, fill) or an error text."""
        ...

    async def get(self, client_order_id: str) -> Intent | None:
        """One intent, or None."""
        ...

    async def by_request(self, request_id: str) -> Intent | None:
        """The active intent of a request id, or None."""
        ...

    async def open_intents(self) -> list[Intent]:
        """Intents whose outcome is unknown, oldest first."""
        ...

    async def list(self, limit: int = 100) -> list[Intent]:
        """Most recent intents first."""
        ...


def _apply(intent: Intent, status: IntentStatus, order: Order | None, error: str | None) -> None:
    intent.status = status
    if order is not None:
        intent.exchange_order_id = order.id
        intent.order_status = order.status
        intent.filled = order.filled
        intent.average = order.average
    if error is not None:  # appended: the first error (e.g. the lost reply) stays readable
        intent.error = (f"{intent.error}; {error}" if intent.error else error)[:500]


class MemoryIntentStore:
    """In-memory :class:`IntentStore` (unit tests; state is lost with the process)."""

    def __init__(self) -> None:
        self._rows: dict[str, Intent] = {}

    async def record(self, intent: Intent) -> None:
        """See :meth:`IntentStore.record`."""
        if intent.request_id is not None:
            existing = await self.by_request(intent.request_id)
            if existing is not None:
                raise DuplicateRequest(existing)
        if intent.client_order_id in self._rows:
            raise ValueError(f"client order id {intent.client_order_id} already recorded")
        self._rows[intent.client_order_id] = dataclasses.replace(intent)

    async def update(
        self, client_order_id: str, status: IntentStatus, order: Order | None = None, error: str | None = None
    ) -> None:
        """See :meth:`IntentStore.update`."""
        _apply(self._rows[client_order_id], status, order, error)

    async def get(self, client_order_id: str) -> Intent | None:
        """See :meth:`IntentStore.get`."""
        row = self._rows.get(client_order_id)
        return dataclasses.replace(row) if row else None

    async def by_request(self, request_id: str) -> Intent | None:
        """See :meth:`IntentStore.by_request`."""
        for row in self._rows.values():
            if row.request_id == request_id and row.status in _ACTIVE:
                return dataclasses.replace(row)
        return None

    async def open_intents(self) -> list[Intent]:
        """See :meth:`IntentStore.open_intents`."""
        return [dataclasses.replace(r) for r in self._rows.values() if r.is_open]

    async def list(self, limit: int = 100) -> list[Intent]:
        """See :meth:`IntentStore.list`."""
        return [dataclasses.replace(r) for r in reversed(list(self._rows.values()))][:limit]


class PgIntentStore(Repository):
    """Intents and paper snapshots in Postgres, on a shared :class:`Database` (or a private one
    built from a DSN: ``open()`` then connects it and migrates)."""

    def __init__(self, db: Database | str, *, max_size: int = 4, connect_timeout: int = 3) -> None:
        """Use ``db``, or connect to the DSN on :meth:`open` (never logged with its password)."""
        super().__init__(db, max_size=max_size, connect_timeout=max(2, connect_timeout), name="alina-intents")

    def __repr__(self) -> str:
        return f"PgIntentStore({redact_dsn(self._dsn)!r})"

    async def __aenter__(self) -> PgIntentStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _p(self) -> Database:
        if not self.db.is_open:
            raise RuntimeError("PgIntentStore is not open: call `await store.open()` first")
        return self.db

    async def record(self, intent: Intent) -> None:
        """See :meth:`IntentStore.record` (the insert commits before this returns)."""
        try:
            async with self._p().connection() as conn:
                await conn.execute(
                    "INSERT INTO order_intents (client_order_id, request_id, mode, exchange, symbol, side, "
                    "type, amount, price, status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')",
                    (
                        intent.client_order_id,
                        intent.request_id,
                        intent.mode,
                        intent.exchange,
                        intent.symbol,
                        intent.side,
                        intent.type,
                        intent.amount,
                        intent.price,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            existing = await self.by_request(intent.request_id) if intent.request_id else None
            if existing is None:
                raise
            raise DuplicateRequest(existing) from None

    async def update(
        self, client_order_id: str, status: IntentStatus, order: Order | None = None, error: str | None = None
    ) -> None:
        """See :meth:`IntentStore.update`."""
        row = Intent(client_order_id, None, "", "", "", "", "", 0.0, None)
        _apply(row, status, order, error)
        async with self._p().connection() as conn:
            await conn.execute(
                "UPDATE order_intents SET status = %s, exchange_order_id = COALESCE(%s, exchange_order_id), "
                "order_status = COALESCE(%s, order_status), filled = COALESCE(%s, filled), "
                "average = COALESCE(%s, average), "
                "error = left(CASE WHEN error IS NULL THEN %s "
                "ELSE error || COALESCE('; ' || %s, '') END, 500), "
                "updated_at = now() "
                "WHERE client_order_id = %s",
                (
                    status,
                    row.exchange_order_id,
                    row.order_status,
                    row.filled,
                    row.average,
                    row.error,
                    row.error,
                    client_order_id,
                ),
            )

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[Intent]:
        async with self._p().connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {_COLUMNS} FROM order_intents {where}", params)
            return [Intent(**r) for r in await cur.fetchall()]

    async def get(self, client_order_id: str) -> Intent | None:
        """See :meth:`IntentStore.get`."""
        rows = await self._select("WHERE client_order_id = %s", (client_order_id,))
        return rows[0] if rows else None

    async def by_request(self, request_id: str) -> Intent | None:
        """See :meth:`IntentStore.by_request`."""
        rows = await self._select("WHERE request_id = %s AND status = ANY(%s)", (request_id, list(_ACTIVE)))
        return rows[0] if rows else None

    async def open_intents(self) -> list[Intent]:
        """See :meth:`IntentStore.open_intents`."""
        return await self._select("WHERE status = ANY(%s) ORDER BY created_at", (list(OPEN_STATUSES),))

    async def list(self, limit: int = 100) -> list[Intent]:
        """See :meth:`IntentStore.list`."""
        return await self._select("ORDER BY created_at DESC LIMIT %s", (limit,))

    # ------------------------------------------------------------------ paper snapshots

    async def save_paper_state(self, account: str, state: dict[str, Any]) -> None:
        """Upsert the paper account's snapshot."""
        async with self._p().connection() as conn:
            await conn.execute(
                "INSERT INTO paper_accounts (account, state) VALUES (%s, %s) ON CONFLICT (account) "
                "DO UPDATE SET state = EXCLUDED.state, updated_at = now()",
                (account, Jsonb(state)),
            )

    async def load_paper_state(self, account: str) -> dict[str, Any] | None:
        """The saved snapshot, or None."""
        async with self._p().connection() as conn:
            cur = await conn.execute("SELECT state FROM paper_accounts WHERE account = %s", (account,))
            row = await cur.fetchone()
            return dict(row[0]) if row else None
