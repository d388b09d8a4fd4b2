"""On the real embedded model: the window the task names reaches candle_summary, and the forced
first tool call is written tool name first.

Only what code guarantees is asserted (the grammar's key order, symbols inside the enum, the
tool's window); which tool the 135M model picks is printed, not asserted (run with ``-s``).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from autogen_core.models import SystemMessage, UserMessage

from alina.agents import tools_for, tools_for_agent
from alina.config import AlinaConfig
from alina.models import ModelOutputError
from alina.models import _protocol as proto
from alina.models.llamacpp import LlamaCppClient
from alina.skills.bindings import bind_desk
from alina.skills.context import RunContext, run_context
from alina.team import MemorySink, TeamRunner
from alina.trading.config import TradingConfig
from alina.trading.desk import open_desk

SIX_HOURS = "What is the BTC/USDT trend over the last 6 hours?"
REQUESTS = [
    (SIX_HOURS, {"candle_summary"}),
    ("What is the current price of ETH?", {"ticker", "get_price"}),
    ("Show my account balance", {"balance"}),
    ("List my open orders", {"open_orders"}),
    ("Buy 0.01 BTC/USDT at market", {"place_order"}),
    ("Cancel order paper-3", {"cancel_order"}),
    ("What market regime is BTC in right now?", {"market_regime"}),
    ("Do I hold any positions?", {"positions"}),
    ("How did bitcoin move over the past 2 days?", {"candle_summary"}),
    ("Is the system healthy? Check memory and latency.", {"system_health"}),
]


@pytest.mark.slow
@pytest.mark.integration
async def test_a_team_run_reports_the_window_the_task_names() -> None:
    desk = await open_desk(TradingConfig())
    bind = contextlib.ExitStack()
    bind.enter_context(bind_desk(desk))
    cfg = AlinaConfig.model_validate({"cache": {"enabled": False}, "memory": {"enabled": False}})
    runner = TeamRunner(cfg, sink=MemorySink())
    try:
        result = await runner.run(SIX_HOURS)
        assert result.status in ("completed", "stopped"), result.error
        outputs = [e.content for e in result.events if e.type == "ToolCallExecutionEvent"]
        summaries = [o for o in outputs if "BTC/USDT 5m, last" in o]
        assert summaries, outputs  # preselect leaves candle_summary alone for this request
        assert all("last 6h of data" in s and "72 candles" in s for s in summaries), summaries
    finally:
        await runner.close()
        bind.close()
        await desk.close()


@pytest.mark.integration
async def test_forced_first_calls_name_the_tool_first_and_use_known_symbols() -> None:
    tools = tools_for_agent("trader") + tools_for("monitor")
    schemas = {s.name: s.parameters for s in proto.tool_specs(tools)}
    client = LlamaCppClient(model="smollm2", max_tokens=128, timeout_s=120.0)
    raw: list[str] = []
    complete = client._complete

    async def recording(*args: Any, **kwargs: Any) -> Any:
        done = await complete(*args, **kwargs)
        raw.append(done.text)
        return done

    client._complete = recording  # type: ignore[method-assign]
    right, lines = 0, []
    for text, want in REQUESTS:
        messages = [
            SystemMessage(content="You are a trading assistant. Use one tool."),
            UserMessage(content=text, source="user"),
        ]
        try:
            result = await client.create(messages, tools=tools, tool_choice="required")
        except ModelOutputError as exc:  # e.g. an argument string running to max_tokens
            lines.append(f"BAD {text!r} -> {str(exc)[:80]}")
            continue
        [call] = result.content  # type: ignore[misc]
        args = json.loads(call.arguments)
        right += call.name in want
        lines.append(f"{'OK ' if call.name in want else 'BAD'} {text!r} -> {call.name} {args}")
        symbol = schemas[call.name].get("properties", {}).get("symbol")
        if symbol is not None and "symbol" in args:
            assert args["symbol"] in symbol.get("enum", [symbol.get("const")])
        if text == SIX_HOURS:
            assert call.name == "candle_summary"  # the only tool preselect leaves for it
            with run_context(RunContext(text)):
                out = await tools[[t.name for t in tools].index(call.name)].run_json(args, None)  # type: ignore[arg-type]
            assert "last 6h of data" in out, out
    print(f"\nforced first tool call, embedded model: {right}/{len(REQUESTS)} right tool")
    print("\n".join(lines))
    assert len(raw) == len(REQUESTS)
    assert all(re.match(r'\s*\{\s*"tool"\s*:', r) for r in raw), raw  # the tool name comes first
