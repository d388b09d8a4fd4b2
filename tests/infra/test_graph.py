"""The memory graph on real Postgres: writes with provenance, neighbours, paths, recent facts,
and the schema reached from every earlier migration version."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from alina.memory_store import RunStore, migrate
from alina.memory_store.graph import MemoryGraph, parse_ref
from alina.memory_store.migrate import load_migrations

pytestmark = pytest.mark.integration

BTC = ("asset", "BTC/USDT")
MIGRATIONS = Path(__file__).resolve().parents[2] / "alina" / "memory_store" / "migrations"


@pytest.fixture
async def graph(fresh_pg_dsn: str):
    store = RunStore(fresh_pg_dsn)
    await store.open()
    await store.create_run("r1", "trend?", {})
    yield MemoryGraph(store)
    await store.close()


async def test_relations_carry_provenance_and_neighbours_come_newest_first(graph: MemoryGraph) -> None:
    await graph.relate(
        ("agent", "trader"), "observed", BTC, fact="downtrend -4.25% over 24h", run_id="r1", message_seq=3
    )
    await graph.relate(("agent", "trader"), "used", ("tool", "candle_summary"), run_id="r1", message_seq=2)
    await graph.relate(("agent", "monitor"), "observed", ("model", "smollm2"), fact="p95 1.2s")
    edges = await graph.neighbours(BTC)
    assert [str(e) for e in edges] == [
        "agent:trader -observed-> asset:BTC/USDT: downtrend -4.25% over 24h [run r1 #3]"
    ]
    trader = await graph.neighbours(("agent", "trader"))
    assert [e.rel for e in trader] == ["used", "observed"]
    assert [e.dst for e in await graph.neighbours(("agent", "trader"), rel="used")] == [
        ("tool", "candle_summary")
    ]


async def test_paths_follow_relations_in_both_directions_shortest_first(graph: MemoryGraph) -> None:
    await graph.relate(("agent", "trader"), "decided", ("strategy", "sma_cross"))
    await graph.relate(("strategy", "sma_cross"), "used", BTC)
    await graph.relate(("alert", "latency-high"), "caused", ("agent", "trader"))
    await graph.relate(("alert", "latency-high"), "observed", BTC)
    paths = await graph.paths(("agent", "trader"), BTC)
    assert [len(p) for p in paths] == [2, 2]
    assert {tuple(e.rel for e in p) for p in paths} == {("decided", "used"), ("caused", "observed")}
    assert await graph.paths(("agent", "trader"), BTC, max_depth=1) == []
    assert await graph.paths(("agent", "trader"), ("asset", "ETH/USDT")) == []


async def test_recent_facts_and_find(graph: MemoryGraph) -> None:
    for i in range(5):
        await graph.relate(("agent", "trader"), "observed", BTC, fact=f"close {i}")
    await graph.relate(("agent", "monitor"), "used", BTC)
    facts = await graph.recent_facts(BTC, limit=3)
    assert [e.fact for e in facts] == ["close 4", "close 3", "close 2"]
    assert await graph.find("BTC/USDT") == [BTC]
    assert await graph.find(("agent", "nobody")) == []


async def test_unknown_kinds_and_relations_are_refused(graph: MemoryGraph) -> None:
    with pytest.raises(ValueError, match="unknown relation"):
        await graph.relate(("agent", "trader"), "loves", BTC)
    with pytest.raises(ValueError, match="unknown entity kind"):
        await graph.entity("planet", "mars")
    assert parse_ref("asset:BTC/USDT") == BTC and parse_ref("BTC/USDT") == "BTC/USDT"


async def test_schema_upgrades_from_every_earlier_version(fresh_pg_dsn: str, tmp_path: Path) -> None:
    """Start from each prefix of the migration list, then migrate to the latest."""
    all_migrations = load_migrations()
    latest = [m.name for m in all_migrations]
    for n in range(len(all_migrations) + 1):
        partial = tmp_path / f"upto{n}"
        partial.mkdir()  # test setup on a tmp dir
        for m in all_migrations[:n]:
            shutil.copy(MIGRATIONS / f"{m.name}.sql", partial / f"{m.name}.sql")
        async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
            await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            assert await migrate(conn, directory=partial) == latest[:n]
            assert await migrate(conn) == latest[n:]
            assert await migrate(conn) == []
            cur = await conn.execute("SELECT name FROM schema_migrations ORDER BY version")
            assert [r[0] for r in await cur.fetchall()] == latest
