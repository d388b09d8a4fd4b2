"""Tests for alina.skills.builtin (tools, schemas, instrumentation, health)."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest
from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool

from alina.agents import tools_for
from alina.monitoring import metrics
from alina.monitoring.metrics import REGISTRY, LatencyWindow, observe_model_call
from alina.skills import builtin
from alina.skills.builtin import (
    BUILTIN_SKILLS,
    candle_summary,
    evaluate_health,
    get_price,
    instrument,
    parse_args_doc,
    score_answer,
    score_text,
    system_health,
)
from alina.trading.market_data import MarketData


def val(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run(tool: FunctionTool, args: dict):
    """Run a tool on a private event loop (never touches the thread's current loop)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(tool.run_json(args, CancellationToken()))
    finally:
        loop.close()


# --------------------------------------------------------------------------- trader tools


@pytest.mark.parametrize("symbol", ["BTC/USDT", "btc/usdt", "BTCUSDT", "btc", "Btc-Usdt"])
def test_get_price_normalises_symbol(symbol):
    out = get_price(symbol)
    assert out == (
        "BTC/USDT last price 21,925.7 (close of the 5m candle at 2023-02-09 21:15 UTC, historical data)"
    )


def test_unknown_symbol_is_a_clean_error_string():
    for out in (get_price("DOGE"), candle_summary("XYZ/EUR", 4)):
        assert out.startswith("error:")
        assert "available: BTC/USDT" in out
        assert "\n" not in out and len(out) < 200


def test_candle_summary_matches_market_data():
    assert candle_summary() == MarketData().summary("BTC/USDT", 24).to_text()
    assert "48 candles" in candle_summary("btc", 4)
    assert candle_summary(hours=-2).startswith("error:")
    assert candle_summary(hours="abc").startswith("error:")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- schemas


def test_registry_and_tool_names():
    assert set(BUILTIN_SKILLS) == {"trader", "monitor", "optimizer"}
    assert [t.name for t in tools_for("trader")] == ["get_price", "candle_summary"]
    assert [t.name for t in tools_for("monitor")] == ["system_health"]
    assert [t.name for t in tools_for("optimizer")] == ["score_answer"]
    assert tools_for("planner") == []
    assert all(isinstance(t, FunctionTool) for a in BUILTIN_SKILLS for t in tools_for(a))


def test_tool_schemas_have_types_defaults_descriptions():
    schemas = {t.name: t.schema for a in BUILTIN_SKILLS for t in tools_for(a)}
    for name, sch in schemas.items():
        func = getattr(builtin, name)
        assert sch["description"] == inspect.getdoc(func).splitlines()[0]
        assert 10 < len(sch["description"]) < 120
        for pname, prop in sch["parameters"]["properties"].items():
            assert prop["description"] != pname and len(prop["description"]) > 10

    p = schemas["get_price"]["parameters"]
    assert p["properties"]["symbol"]["type"] == "string"
    assert p["properties"]["symbol"]["default"] == "BTC/USDT"
    assert p["required"] == []

    p = schemas["candle_summary"]["parameters"]
    assert p["properties"]["hours"] == {
        "default": 24.0,
        "description": "How many hours back from the end of the data to summarise, e.g. 24.",
        "title": "Hours",
        "type": "number",
    }
    assert p["properties"]["symbol"]["type"] == "string"

    p = schemas["score_answer"]["parameters"]
    assert p["required"] == []  # nothing for a small model to copy: it names whose report to score
    assert p["properties"]["of"]["enum"] == ["latest", "trader", "monitor", "request"]
    assert p["properties"]["of"]["default"] == "latest"

    assert schemas["system_health"]["parameters"]["properties"] == {}


def test_instrument_preserves_signature_and_docs():
    wrapped = instrument(candle_summary, "trader")
    assert wrapped.__name__ == "candle_summary" and wrapped.__doc__ == candle_summary.__doc__
    sig = inspect.signature(wrapped)
    assert [(p.name, p.default) for p in sig.parameters.values()] == [("symbol", "BTC/USDT"), ("hours", 24.0)]
    assert candle_summary.__annotations__["hours"] in (float, "float")  # original untouched


def test_parse_args_doc_multiline():
    def f(a: int, b: str = "x") -> str:
        """Do a thing.

        Args:
            a: First line
                continues here.
            b (str): Second.

        Returns:
            text
        """
        return ""

    assert parse_args_doc(f) == {"a": "First line continues here.", "b": "Second."}


# --------------------------------------------------------------------------- instrumentation


def test_tool_calls_are_recorded_ok_and_error():
    tool = tools_for("trader")[1]
    ok0 = val("alina_tool_calls_total", agent="trader", tool="candle_summary", outcome="ok")
    err0 = val("alina_tool_calls_total", agent="trader", tool="candle_summary", outcome="error")
    n0 = val("alina_tool_call_seconds_count", tool="candle_summary")
    assert "21,925.7" in run(tool, {"symbol": "BTC/USDT"})
    assert run(tool, {"symbol": "BTC/USDT", "hours": -1}).startswith("error:")
    assert val("alina_tool_calls_total", agent="trader", tool="candle_summary", outcome="ok") == ok0 + 1
    assert val("alina_tool_calls_total", agent="trader", tool="candle_summary", outcome="error") == err0 + 1
    assert val("alina_tool_call_seconds_count", tool="candle_summary") == n0 + 2


def test_symbol_is_an_enum_in_the_schema():
    """The grammar-constrained model can only name a pair with data."""
    schema = tools_for("trader")[0].schema["parameters"]["properties"]["symbol"]
    assert schema.get("const") == "BTC/USDT" or schema.get("enum") == ["BTC/USDT"]


def test_raising_tool_records_error_and_propagates():
    def boom(x: int = 1) -> str:
        """Always fails.

        Args:
            x: Anything.
        """
        raise RuntimeError("kaput")

    tool = FunctionTool(instrument(boom, "t_boom"), description="Always fails.", name="boom")
    e0 = val("alina_tool_calls_total", agent="t_boom", tool="boom", outcome="error")
    with pytest.raises(RuntimeError):
        run(tool, {"x": 2})
    assert val("alina_tool_calls_total", agent="t_boom", tool="boom", outcome="error") == e0 + 1


def test_async_tool_is_instrumented():
    async def aping(name: str = "x") -> str:
        """Ping asynchronously.

        Args:
            name: Who to ping.
        """
        return f"pong {name}"

    tool = FunctionTool(instrument(aping, "t_async"), description="Ping.", name="aping")
    o0 = val("alina_tool_calls_total", agent="t_async", tool="aping", outcome="ok")
    assert run(tool, {"name": "bob"}) == "pong bob"
    assert val("alina_tool_calls_total", agent="t_async", tool="aping", outcome="ok") == o0 + 1
    assert tool.schema["parameters"]["properties"]["name"]["description"] == "Who to ping."


# --------------------------------------------------------------------------- monitor


@pytest.fixture
def fresh_latency(monkeypatch):
    window = LatencyWindow(maxlen=50)
    monkeypatch.setattr(metrics, "LATENCY", window)
    monkeypatch.setattr(builtin, "LATENCY", window)
    return window


def test_system_health_fields(fresh_latency):
    out = system_health()
    lines = out.splitlines()
    assert len(lines) == 4 and len(out) < 900
    assert lines[2].startswith("figures since start: model calls ") and "alerts firing: " in lines[2]
    assert lines[3] == "status: mode and alerts unavailable (no stores configured in this process)"
    assert re.match(r"^(healthy|degraded)\b", lines[0])
    assert re.search(r"process cpu \d+\.\d%", lines[0])
    assert re.search(r"rss \d+ MB", lines[0])
    assert re.search(r"system memory \d+% used", lines[0])
    assert re.search(r"load \d+\.\d\d/\d+\.\d\d/\d+\.\d\d \(\d+ cpu\)", lines[0])
    assert lines[1] == "model latency: no model calls recorded yet"

    for s in (0.4, 0.6, 0.8):
        observe_model_call("trader", "local", "smollm2", s)
    out = system_health()
    assert "model latency: trader p50 0.60s p95 0.78s last 0.80s (3 calls)" in out


def test_slow_model_makes_health_degraded(fresh_latency):
    for _ in range(5):
        observe_model_call("planner", "local", "smollm2", 45.0, outcome="timeout")
    out = system_health()
    assert out.startswith("degraded")
    assert "planner p95 45.0s > 30s" in out


def test_evaluate_health_thresholds():
    fast = {"trader": {"calls": 3, "p50_s": 1.0, "p95_s": 2.0, "last_s": 1.0}}
    slow = {"trader": {"calls": 3, "p50_s": 20.0, "p95_s": 31.0, "last_s": 25.0}}
    assert evaluate_health(50, 0.5, 4, fast) == ("healthy", [])
    assert evaluate_health(91, 0.5, 4, fast)[0] == "degraded"
    assert evaluate_health(50, 0.5, 4, slow)[0] == "degraded"
    assert evaluate_health(50, 8.5, 4, fast)[0] == "degraded"
    assert evaluate_health(90, 8.0, 4, {})[0] == "healthy"  # thresholds are strict


# --------------------------------------------------------------------------- optimizer


def test_score_text_output():
    good = score_text(
        "BTC/USDT last price 21,925.7, trend downtrend (-4.25% over 24h).", "What is the BTC price and trend?"
    )
    assert good.startswith("score 1.00: non_empty=pass, length_ok=pass, has_numbers=pass")
    bad = score_text("I'm sorry, I cannot help with that.", "What is the BTC price?")
    m = re.match(r"score (\d\.\d\d): ", bad)
    assert m and float(m.group(1)) < 0.8
    assert "no_refusal=fail" in bad and "has_numbers=fail" in bad
    assert score_text("") == "score 0.00: non_empty=fail (empty answer)"


def test_score_answer_scores_the_runs_reports_not_model_copied_text():
    from alina.memory_store.checkpoints import MessageRow
    from alina.skills.builtin import conversation_scope

    assert score_answer().startswith("error:")  # outside a run
    task = "Check health, then summarise the BTC trend and score the summary"
    trend = "BTC/USDT close 21,925.7 (-4.25%), trend downtrend"
    messages = [
        MessageRow(1, "user", "TextMessage", task),
        MessageRow(2, "monitor", "ToolCallRequestEvent", "[...]"),
        MessageRow(3, "monitor", "ToolCallSummaryMessage", "healthy: process cpu 3.1%"),
    ]
    with conversation_scope(task, lambda: messages):
        assert score_answer("trader") == "error: no report from trader in this run yet; ask trader first"
        messages.append(MessageRow(4, "trader", "ToolCallSummaryMessage", trend))  # read live
        messages.append(MessageRow(5, "optimizer", "ToolCallSummaryMessage", "score 0.10: ..."))
        assert score_answer() == "trader's report: " + score_text(trend, task)
        assert score_answer("monitor") == "monitor's report: " + score_text("healthy: process cpu 3.1%", task)
    request = "@optimizer score this: BTC rose 3% today"
    with conversation_scope(request, list):
        assert score_answer() == "the request's text: " + score_text("BTC rose 3% today", request)
        assert score_answer("request") == score_answer()
