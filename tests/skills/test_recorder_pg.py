"""PostgresToolCallRecorder on a real Postgres: rows, masking, run attribution, fail-open."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from autogen_core import CancellationToken

from alina.agents import build_tool
from alina.memory_store import RunStore
from alina.skills._contract import ToolOutput
from alina.skills.context import RunContext, run_context
from alina.skills.loader import SkillRegistry
from alina.skills.recorder import MASK, PostgresToolCallRecorder, ToolCallRecord, run_scope


def tool_text(result: Any) -> str:
    """The text of a FunctionTool's result as the model receives it."""
    return result if isinstance(result, str) else str(result)


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


def probe(symbol: str, api_key: str = "") -> str:
    """Probe a pair.

    Args:
        symbol: Trading pair.
        api_key: Exchange API key.
    """
    return ToolOutput(f"{symbol} probed", {"symbol": symbol, "token": api_key, "ok": True})


def test_a_structured_result_is_kept_by_call_id_masked_and_read_back_with_the_run(fresh_pg_dsn: str) -> None:
    """A skill's ToolOutput: the model gets the text; the data (secrets masked) goes into the run
    context under the call id AutoGen passes, into tool_calls, and back out of RunStore.get_run
    (what the memory writer of a resumed run reads)."""

    async def go() -> tuple[Any, dict[str, Any], dict[str, Any] | None]:
        ctx = RunContext("probe BTC/USDT", run_id="run-2")
        async with PostgresToolCallRecorder(fresh_pg_dsn) as rec:
            async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
                await conn.execute("INSERT INTO runs (id, task) VALUES ('run-2', 'probe')")
            tool = build_tool(SkillRegistry().add(probe, agents=["trader"]), "trader", rec)
            with run_scope("run-2"), run_context(ctx):
                out = await tool.run_json(
                    {"symbol": "BTC/USDT", "api_key": "sk-live-abcdefghijklmnop"},
                    CancellationToken(),
                    call_id="call_7",
                )
        store = RunStore(fresh_pg_dsn)
        await store.open()
        try:
            run = await store.get_run("run-2")
        finally:
            await store.close()
        return out, ctx.outputs, run

    out, outputs, run = asyncio.run(go())
    assert tool_text(out) == "BTC/USDT probed"  # the model reads the text
    assert outputs == {"call_7": {"symbol": "BTC/USDT", "token": MASK, "ok": True}}
    with psycopg.connect(fresh_pg_dsn) as conn:
        row = conn.execute(
            "SELECT call_id, data, data::text FROM tool_calls WHERE run_id = 'run-2'"
        ).fetchone()
    assert row is not None and row[0] == "call_7" and row[1] == outputs["call_7"]
    assert "sk-live" not in row[2]
    assert run is not None and run["tool_data"] == outputs
