"""Migrations runner: ordered, recorded, idempotent, safe under concurrency."""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

import pytest
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from alina.memory_store import migrate
from alina.memory_store.migrate import load_migrations

ALL = [m.name for m in load_migrations()]


async def _tables(conn: AsyncConnection) -> set[str]:
    cur = await conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return {row[0] for row in await cur.fetchall()}


def test_packaged_migrations_are_ordered() -> None:
    migrations = load_migrations()
    assert [m.name for m in migrations][:1] == ["0001_runs_messages"]
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)


def test_bad_migration_file_names_are_rejected(tmp_path: Path) -> None:
    (tmp_path / "1_oops.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="1_oops.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_oops.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="0001"):
        load_migrations(tmp_path)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_migrate_from_empty_then_idempotent(fresh_pg_dsn: str) -> None:
    async with await AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
        assert await _tables(conn) == set()
        assert await migrate(conn) == ALL
        assert {"runs", "messages", "schema_migrations"} <= await _tables(conn)
        assert await migrate(conn) == []
        cur = await conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        rows = await cur.fetchall()
        assert [n for _, n, _ in rows] == ALL
        assert rows[0][:2] == (1, "0001_runs_messages")
        assert rows[0][2] is not None
        cur = await conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'runs' AND indexdef LIKE '%DESC%'"
        )
        assert await cur.fetchone() is not None


@pytest.mark.integration
@pytest.mark.asyncio
async def test_migrate_with_pool_and_non_autocommit_connection(fresh_pg_dsn: str) -> None:
    pool = AsyncConnectionPool(fresh_pg_dsn, min_size=1, max_size=2, open=False)
    await pool.open(wait=True, timeout=10)
    try:
        assert await migrate(pool) == ALL
    finally:
        await pool.close()
    async with await AsyncConnection.connect(fresh_pg_dsn) as conn:  # autocommit off
        assert await migrate(conn) == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_concurrent_migrations_apply_each_file_once(fresh_pg_dsn: str) -> None:
    conns = [await AsyncConnection.connect(fresh_pg_dsn, autocommit=True) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    applied = [name for result in results for name in result]
    assert sorted(applied) == ALL


@pytest.mark.integration
@pytest.mark.asyncio
async def test_new_migration_applies_only_the_pending_one(fresh_pg_dsn: str, tmp_path: Path) -> None:
    packaged = resources.files("alina.memory_store") / "migrations" / "0001_runs_messages.sql"
    (tmp_path / "0001_runs_messages.sql").write_text(packaged.read_text())
    async with await AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
        assert await migrate(conn, directory=tmp_path) == ["0001_runs_messages"]
        (tmp_path / "0002_add_note.sql").write_text(
            "ALTER TABLE runs ADD COLUMN IF NOT EXISTS note text;\n"
            "CREATE INDEX IF NOT EXISTS runs_note_idx ON runs (note);\n"
        )
        (tmp_path / "README.txt").write_text("ignored")
        assert await migrate(conn, directory=tmp_path) == ["0002_add_note"]
        assert await migrate(conn, directory=tmp_path) == []
        cur = await conn.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in await cur.fetchall()] == [1, 2]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_failing_migration_rolls_back_and_is_not_recorded(fresh_pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "0001_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    async with await AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
        with pytest.raises(Exception, match="no_such_function"):
            await migrate(conn, directory=tmp_path)
        assert "half_done" not in await _tables(conn)
        cur = await conn.execute("SELECT count(*) FROM schema_migrations")
        assert await cur.fetchone() == (0,)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_status_lists_pending_applied_and_unknown_versions(fresh_pg_dsn: str) -> None:
    from alina.memory_store.migrate import migration_status

    async with await AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
        empty = await migration_status(conn)
        assert [(s.name, s.applied_at, s.known) for s in empty] == [(n, None, True) for n in ALL]
        assert await _tables(conn) == set()  # status changes nothing
        await migrate(conn)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_from_the_future')"
        )
        rows = await migration_status(conn)
        assert [s.name for s in rows] == [*ALL, "9999_from_the_future"]
        assert all(s.applied_at is not None for s in rows)
        assert [s.known for s in rows] == [True] * len(ALL) + [False]
