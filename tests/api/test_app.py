"""The Python API on real Postgres and Redis: two applications in one process own two desks;
the blocking facade works while an event loop is running (as in Jupyter); prompts and runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from alina.api import Alina
from alina.runtime.services import PostgresService, RedisService
from alina.skills import trading as trading_skills

pytestmark = pytest.mark.integration


def write_config(
    folder: Path, pg: PostgresService, redis: RedisService, database: str, cash: float = 10_000.0
) -> Path:
    """A config.yaml on the session's servers and ``database`` (created if missing)."""
    with psycopg.connect(pg.dsn_for("postgres"), autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    path = folder / f"config-{database}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(folder / "data")},
                "postgres": {"port": pg.port, "database": database},
                "redis": {"port": redis.port},
                "trading": {"starting_balances": {"USDT": cash}},
            }
        )
    )
    return path


@pytest.fixture
def two_configs(
    infra_root: Path, pg_service: PostgresService, redis_service: RedisService
) -> Iterator[tuple[Path, Path]]:
    names = [f"api_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield (
        write_config(infra_root, pg_service, redis_service, names[0], cash=10_000.0),
        write_config(infra_root, pg_service, redis_service, names[1], cash=5_000.0),
    )
    with psycopg.connect(pg_service.dsn_for("postgres"), autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def test_two_applications_in_one_process_have_two_desks(two_configs: tuple[Path, Path]) -> None:
    a_path, b_path = two_configs
    async with Alina.from_config(a_path) as a, Alina.from_config(b_path) as b:
        assert await a.desk() is not await b.desk()
        order = await a.trading.place_order("BTC/USDT", "buy", 0.002)
        assert order is not None and order.status == "closed"
        assert [p.symbol for p in await a.trading.positions()] == ["BTC/USDT"]
        assert await b.trading.positions() == []
        assert (await b.trading.balances())["USDT"].free == 5_000.0
        # The skills the agents call see the desk of the application they run in.
        with a.bound():
            assert (await trading_skills.positions()).startswith("BTC/USDT 0.002")
        with b.bound():
            assert await trading_skills.positions() == "no open positions"
            assert "USDT free 5000" in await trading_skills.balance()
    # The order is durable: a new application on the same database finds the position.
    async with Alina.from_config(a_path) as again:
        assert [p.amount for p in await again.trading.positions()] == [pytest.approx(0.002)]


async def test_the_blocking_facade_works_inside_a_running_event_loop(two_configs: tuple[Path, Path]) -> None:
    # This test body runs on an event loop, like a notebook cell in Jupyter's kernel.
    with Alina.sync(two_configs[1]) as app:
        assert app.runs.list() == []
        assert app.trading.orders() == []
        status = app.status()
        assert status["stores"]["postgres"]["ok"] and status["stores"]["redis"]["ok"]
        assert status["mode"]["mode"] == "normal"
        bt = app.trading.backtest("BTC/USDT", strategy="sma_cross", params={"fast": 10, "slow": 40})
        assert len(bt.equity) == len(bt.data) and bt.params == {"fast": 10, "slow": 40}
        with pytest.raises(LookupError):
            app.runs.report("no-such-run")


async def test_prompt_versions_propose_diff_promote_roll_back(two_configs: tuple[Path, Path]) -> None:
    async with Alina.from_config(two_configs[0]) as app:
        current = await app.prompts.get("monitor")
        body = await app.prompts.body("monitor")
        candidate = await app.prompts.propose("monitor", body + " Keep it short.", reason="shorter")
        assert candidate.status == "candidate"
        assert "Keep it short." in await app.prompts.diff("monitor", current.version, candidate.version)
        await app.prompts.promote("monitor", candidate.version, reason="by hand")
        back = await app.prompts.rollback("monitor", current.version, reason="undo")
        history = await app.prompts.history("monitor")
        assert [v.version for v in history if v.in_use] == [back.version]
        assert (await app.prompts.get("monitor")).system == current.system
        assert await app.runs.scores() == []
