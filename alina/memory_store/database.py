"""The one Postgres connection pool of a process, and the migrations it applies once.

Every repository on Postgres (:class:`~alina.memory_store.RunStore`, the trading desk's
:class:`~alina.trading.intents.PgIntentStore`, the skills'
:class:`~alina.skills.recorder.PostgresToolCallRecorder`, ...) takes a :class:`Database` and
borrows its connections; whoever built the ``Database`` opens and closes it. A repository given
a DSN instead builds a private ``Database`` (one pool, one migration run) for itself, which
keeps one-off uses (tests, notebooks) a one-liner; an ``alina run`` builds one and shares it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from alina.memory_store.migrate import migrate

__all__ = [
    "Database",
    "Repository",
    "StoreUnavailableError",
    "is_connection_error",
    "redact_dsn",
    "unavailable_error",
]


class StoreUnavailableError(RuntimeError):
    """The Postgres server cannot be reached; the operator must start it (``alina up``)."""


def redact_dsn(dsn: str) -> str:
    """Render ``dsn`` (URL or ``key=value`` form) as ``postgresql://user@host:port/db``, no password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    user = str(params.get("user", ""))
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    dbname = params.get("dbname", user)
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{dbname}"


def is_connection_error(exc: BaseException) -> bool:
    """True for "cannot talk to the server" errors, False for SQL errors such as a lock timeout."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def unavailable_error(dsn: str, exc: BaseException) -> StoreUnavailableError:
    """The error for an unreachable server: the reason and the DSN without its password."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailableError(
        f"cannot reach Postgres at {redact_dsn(dsn)} ({reason}). "
        "Is the server running? Run `alina up` (and check postgres.port in config.yaml)."
    )


class Database:
    """One async psycopg pool on ``dsn``; :meth:`open` connects it and applies pending migrations.

    ``open()`` is idempotent and safe to call from several tasks at once: the pool is built and
    the migrations run once for the object's life. Usable as ``async with Database(dsn) as db``.
    ``pools_opened`` / ``migration_runs`` count, process-wide, how often that happened (tests
    use them to check that one run opens one pool).
    """

    pools_opened: ClassVar[int] = 0
    migration_runs: ClassVar[int] = 0

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 3,
        open_timeout: float = 10.0,
        acquire_timeout: float = 10.0,
        name: str = "alina",
    ) -> None:
        self.dsn = dsn
        self._min_size, self._max_size = min_size, max_size
        self._connect_timeout = max(2, int(connect_timeout))  # libpq rounds below 2 s up to 2 s
        self._open_timeout, self._acquire_timeout = open_timeout, acquire_timeout
        self._name = name
        self._pool: AsyncConnectionPool | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Database({redact_dsn(self.dsn)!r})"

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> Database:
        """Connect the pool and apply pending migrations (once). Raises StoreUnavailableError,
        naming the DSN without its password, if the server cannot be reached in time."""
        async with self._lock:
            if self._pool is not None:
                return self
            # One direct connection first: it fails fast with the real reason (refused, unknown
            # database...), whereas the pool would retry silently until its timeout.
            try:
                probe = await AsyncConnection.connect(self.dsn, connect_timeout=self._connect_timeout)
            except psycopg.OperationalError as exc:
                raise unavailable_error(self.dsn, exc) from exc
            await probe.close()
            pool = AsyncConnectionPool(
                self.dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                open=False,
                kwargs={"connect_timeout": self._connect_timeout},
                timeout=self._acquire_timeout,
                check=AsyncConnectionPool.check_connection,
                name=self._name,
            )
            try:
                await pool.open(wait=True, timeout=self._open_timeout)
                Database.pools_opened += 1
                await migrate(pool)
                Database.migration_runs += 1
            except BaseException as exc:
                await pool.close()
                if is_connection_error(exc):
                    raise unavailable_error(self.dsn, exc) from exc
                raise
            self._pool = pool
            return self

    async def close(self) -> None:
        """Close the pool. Safe to call twice."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def pool(self) -> AsyncConnectionPool:
        """The open pool; RuntimeError before :meth:`open`."""
        if self._pool is None:
            raise RuntimeError(f"{self!r} is not open: call `await db.open()` first")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection (committed when the block ends without an error)."""
        async with self.pool.connection() as conn:
            yield conn


class Repository:
    """Base of a Postgres repository: uses a shared :class:`Database`, or owns one built from a DSN.

    ``open()`` opens the database only when the repository owns it; ``close()`` likewise closes
    only an owned one. Subclasses borrow connections through ``self.db.connection()``.
    """

    def __init__(self, db: Database | str, **pool_options: Any) -> None:
        self._owns = not isinstance(db, Database)
        self.db: Database = Database(db, **pool_options) if isinstance(db, str) else db

    @property
    def _dsn(self) -> str:
        return self.db.dsn

    async def open(self) -> None:
        """Open the database (a no-op when it is open already: a shared one opens once)."""
        await self.db.open()

    async def close(self) -> None:
        """Close the database if this repository owns it. Safe to call twice."""
        if self._owns:
            await self.db.close()
