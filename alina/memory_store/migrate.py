"""Forward-only SQL migrations for the Postgres store.

Migrations are the files ``migrations/NNNN_name.sql`` shipped in this package. Each pending one
runs in its own transaction and is recorded in ``schema_migrations``. The runner never drops,
rewrites or rolls back anything, so running it again is a no-op, and a transaction-scoped
advisory lock makes concurrent runs (two processes starting at once) apply each file once.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

__all__ = ["Migration", "MigrationStatus", "load_migrations", "migrate", "migration_status"]

logger = logging.getLogger(__name__)

# Arbitrary constant shared by every Alina process ("alina" in ASCII).
_LOCK_KEY = 0x616C696E61
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_BOOKKEEPING = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One migration file: ``version`` from its ``NNNN`` prefix, ``name`` = file stem."""

    version: int
    name: str
    sql: str


def load_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """Read the migration files of ``directory`` (default: the packaged ones), sorted by version.

    Raises ValueError for a ``.sql`` file not named ``NNNN_name.sql`` or a duplicated version.
    """
    source = directory if directory is not None else resources.files("alina.memory_store") / "migrations"
    found: dict[int, Migration] = {}
    for entry in source.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_RE.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_lowercase_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(
                f"migration version {version:04d} is used twice: {found[version].name}.sql and {entry.name}"
            )
        found[version] = Migration(version, entry.name[:-4], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(
    conn_or_pool: AsyncConnection | AsyncConnectionPool,
    *,
    directory: Path | Traversable | None = None,
) -> list[str]:
    """Apply the pending migrations in version order; return the names applied (oldest first).

    Idempotent (returns ``[]`` when the schema is current) and safe to run from several
    processes at once. Accepts a connection or a pool (one pooled connection is used).
    """
    migrations = load_migrations(directory)
    if isinstance(conn_or_pool, AsyncConnectionPool):
        async with conn_or_pool.connection() as conn:
            return await _migrate(conn, migrations)
    return await _migrate(conn_or_pool, migrations)


async def _migrate(conn: AsyncConnection, migrations: list[Migration]) -> list[str]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        await conn.execute(_CREATE_BOOKKEEPING)
    done = await _applied_versions(conn)
    unknown = done - {m.version for m in migrations}
    if unknown:
        logger.warning(
            "database has migrations this code does not know (%s); it was migrated by a newer "
            "version of alina",
            ", ".join(f"{v:04d}" for v in sorted(unknown)),
        )
    applied: list[str] = []
    for migration in migrations:
        if migration.version in done:
            continue
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # Re-check under the lock: another process may have applied it meanwhile.
            cur = await conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = %s", (migration.version,)
            )
            if await cur.fetchone() is not None:
                continue
            # No parameters: psycopg sends it as a simple query, so a file may hold many statements.
            await conn.execute(migration.sql.encode("utf-8"))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
        applied.append(migration.name)
        logger.info("applied migration %s", migration.name)
    return applied


@dataclass(frozen=True)
class MigrationStatus:
    """One migration as ``alina db status`` shows it: packaged and/or applied."""

    version: int
    name: str
    applied_at: str | None  # ISO time; None = pending
    known: bool  # shipped with this code (False: applied by a newer alina)


async def migration_status(
    conn: AsyncConnection, *, directory: Path | Traversable | None = None
) -> list[MigrationStatus]:
    """Every packaged migration and every applied one, in version order; changes nothing.

    A database never migrated (no ``schema_migrations`` table) reports every file as pending.
    """
    packaged = {m.version: m.name for m in load_migrations(directory)}
    applied: dict[int, tuple[str, str]] = {}
    async with conn.transaction():
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        if row is not None and row[0]:
            cur = await conn.execute("SELECT version, name, applied_at FROM schema_migrations")
            applied = {v: (n, at.isoformat()) for v, n, at in await cur.fetchall()}
    return [
        MigrationStatus(
            version=v,
            name=packaged.get(v) or applied[v][0],
            applied_at=applied[v][1] if v in applied else None,
            known=v in packaged,
        )
        for v in sorted(packaged.keys() | applied.keys())
    ]


async def _applied_versions(conn: AsyncConnection) -> set[int]:
    async with conn.transaction():
        cur = await conn.execute("SELECT version FROM schema_migrations")
        return {row[0] for row in await cur.fetchall()}
