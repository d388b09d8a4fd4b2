"""One ``Database`` per process: the Postgres repositories share its pool, migrated once, and
one ``alina run`` session opens one pool and runs the migrations once."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from alina.memory_store import Database, RunStore
from alina.skills.recorder import PostgresToolCallRecorder, ToolCallRecord
from alina.trading.intents import PgIntentStore

pytestmark = pytest.mark.integration
# the module: the package's ``migrate`` attribute is the function of that name
migrate_mod = importlib.import_module("alina.memory_store.migrate")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How many connection pools are opened and how often the migrations run, from now on."""
    counts = {"pools": 0, "migrations": 0}
    open_pool, run_migrations = AsyncConnectionPool.open, migrate_mod._migrate

    async def counting_open(self: AsyncConnectionPool, *a: Any, **kw: Any) -> None:
        counts["pools"] += 1
        await open_pool(self, *a, **kw)

    async def counting_migrate(*a: Any, **kw: Any) -> list[str]:
        counts["migrations"] += 1
        return await run_migrations(*a, **kw)

    monkeypatch.setattr(AsyncConnectionPool, "open", counting_open)
    monkeypatch.setattr(migrate_mod, "_migrate", counting_migrate)
    yield counts


async def test_the_repositories_share_one_pool_migrated_once(
    fresh_pg_dsn: str, counted: dict[str, int]
) -> None:
    async with Database(fresh_pg_dsn) as db:
        store, intents, recorder = RunStore(db), PgIntentStore(db), PostgresToolCallRecorder(db)
        for repo in (store, intents, recorder):
            await repo.open()
        await store.create_run("r1", "task", {})
        await recorder.record(
            ToolCallRecord(
                run_id="r1",
                agent="trader",
                tool="get_price",
                arguments={},
                result_summary="ok",
                duration_ms=1.0,
                outcome="ok",
            )
        )
        assert [c["tool"] for c in await recorder.recent("r1")] == ["get_price"]
        assert await intents.open_intents() == []
        for repo in (store, intents, recorder):
            await repo.close()  # a shared database stays open for the others
        assert db.is_open and (await store.get_run("r1")) is not None
    assert counted == {"pools": 1, "migrations": 1}
    assert not db.is_open


async def test_a_repository_given_a_dsn_owns_its_own_database(
    fresh_pg_dsn: str, counted: dict[str, int]
) -> None:
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run("r1", "task", {})
    assert not store.db.is_open
    assert counted == {"pools": 1, "migrations": 1}


async def test_one_run_session_opens_one_pool_and_migrates_once(
    alina_config_file: Path, counted: dict[str, int]
) -> None:
    from alina.cli import _team_session
    from alina.config import load_config

    cfg = load_config(alina_config_file, environ={}, overrides={"memory.enabled": False})
    async with _team_session(cfg, live=False, on_event=None) as runner:
        assert runner is not None
    assert counted == {"pools": 1, "migrations": 1}
