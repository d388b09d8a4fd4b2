"""PostgresToolCallRecorder on a real Postgres: rows, masking, run attribution, fail-open."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from autogen_core import CancellationToken

from alina.agents import build_tool
from alina.skills.loader import SkillRegistry
from alina.skills.recorder import MASK, PostgresToolCallRecorder, ToolCallRecord, run_scope

pytestmark = pytest.mark.integration


def lookup(symbol: str, api_key: str = "") -> str:
    """Look a symbol up.

    Args:
        symbol: Trading pair.
        api_key: Exchange API key.
    """
    return f"{symbol} ok"


async def _scenario(dsn: str) -> list[dict]:
    async with PostgresToolCallRecorder(dsn) as rec:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute("INSERT INTO runs (id, task) VALUES ('run-1', 'price?')")
        tool = build_tool(SkillRegistry().add(lookup, agents=["trader"]), "trader", rec)
        with run_scope("run-1"):
            await tool.run_json({"symbol": "BTC/USDT", "api_key": "sk-live-abc"}, CancellationToken())
        await tool.run_json({"symbol": "ETH/USDT"}, CancellationToken())
        assert rec.dropped == 0
        return await rec.recent()


def test_tool_calls_are_written_with_secrets_masked(fresh_pg_dsn: str) -> None:
    rows = asyncio.run(_scenario(fresh_pg_dsn))
    assert [r["run_id"] for r in rows] == [None, "run-1"]  # newest first
    first = rows[1]
    assert first["agent"] == "trader" and first["tool"] == "lookup" and first["outcome"] == "ok"
    assert first["arguments"] == {"symbol": "BTC/USDT", "api_key": MASK}
    assert first["result_summary"] == "BTC/USDT ok"
    assert first["duration_ms"] >= 0 and first["created_at"] is not None
    with psycopg.connect(fresh_pg_dsn) as conn:
        stored = conn.execute("SELECT arguments::text FROM tool_calls").fetchall()
    assert not any("sk-live" in s for (s,) in stored)


def test_a_lost_record_is_counted_not_raised(fresh_pg_dsn: str) -> None:
    async def go() -> int:
        async with PostgresToolCallRecorder(fresh_pg_dsn) as rec:
            async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
                await conn.execute("DROP TABLE IF EXISTS tool_calls")  # as if the database broke
            await rec.record(ToolCallRecord(None, "trader", "x", {}, "", 1.0, "ok"))
            return rec.dropped

    assert asyncio.run(go()) == 1
