"""Trader skills: flat schemas with described args, short results, errors as strings, safe mode."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool

from alina.skills import trading as skills
from alina.skills.bindings import bind_desk
from alina.skills.builtin import description_of, instrument, parse_args_doc
from alina.trading.config import RiskConfig
from alina.trading.desk import TradingDesk
from alina.trading.intents import MemoryIntentStore
from alina.trading.risk import RiskGuard

NAMES = ["ticker", "balance", "positions", "open_orders", "place_order", "cancel_order", "market_regime"]


@pytest.fixture
def desk(make_paper) -> Iterator[TradingDesk]:
    d = TradingDesk(make_paper(start=3000), RiskGuard(RiskConfig()), MemoryIntentStore())
    mode = {"now": "normal"}
    d.test_mode = mode  # type: ignore[attr-defined]
    with bind_desk(d, mode=lambda: mode["now"]):
        yield d


def test_skill_list_and_schemas_are_flat_and_documented() -> None:
    assert [f.__name__ for f in skills.TRADING_SKILLS] == NAMES
    for func in skills.TRADING_SKILLS:
        assert inspect.iscoroutinefunction(func) and description_of(func)
        params = inspect.signature(func).parameters
        assert set(parse_args_doc(func)) == set(params), func.__name__
        tool = FunctionTool(instrument(func, "trader"), description=description_of(func), name=func.__name__)
        for name, spec in tool.schema["parameters"]["properties"].items():
            assert spec.get("type") in ("string", "number") and spec.get("description"), (func.__name__, name)
    schema = FunctionTool(instrument(skills.place_order, "trader"), description="x").schema["parameters"]
    assert schema["properties"]["side"]["enum"] == ["buy", "sell"]
    assert schema["required"] == ["symbol", "side", "amount"]


def test_register_hook_uses_the_plugin_contract() -> None:
    contract = pytest.importorskip("alina.skills._contract")
    registry = contract.SkillRegistry(plugin="trading")
    skills.register(registry)
    assert [s.name for s in registry.skills] == NAMES
    assert {s.name for s in registry.skills if s.side_effects} == {"place_order", "cancel_order"}
    assert all(s.agents == ("trader",) for s in registry.skills)


async def test_read_skills_answer_in_one_short_line(desk) -> None:
    for func in (skills.ticker, skills.balance, skills.positions, skills.open_orders, skills.market_regime):
        text = await func()
        assert isinstance(text, str) and 0 < len(text) < 400 and "\n" not in text, text
    assert (await skills.ticker("btc")).startswith("BTC/USDT last ")
    assert await skills.positions() == "no open positions"
    assert await skills.open_orders() == "no open orders"


async def test_order_round_trip_through_the_tools(desk) -> None:
    tool = FunctionTool(instrument(skills.place_order, "trader"), description="place", name="place_order")
    text = await tool.run_json({"symbol": "BTC/USDT", "side": "buy", "amount": 0.01}, CancellationToken())
    assert text.startswith("placed buy market 0.01 BTC/USDT: filled 0.01 @ ")
    last = (await desk.ticker("BTC/USDT")).last
    resting = await skills.place_order("BTC/USDT", "buy", 0.01, "limit", round(last * 0.98, 2))
    assert ": open, filled 0 (order paper-2)" in resting
    assert "paper-2: buy limit 0.01 BTC/USDT" in await skills.open_orders("BTC/USDT")
    assert (await skills.cancel_order("paper-2")).startswith("canceled order paper-2")
    assert (await skills.positions()).startswith("BTC/USDT 0.01 entry ")
    assert "equity" in await skills.balance()


async def test_refusals_come_back_as_error_strings(desk) -> None:
    assert (await skills.place_order("BTC/USDT", "buy", 1.0)).startswith(
        "error: refused by the risk guard (max_order_notional)"
    )
    assert "minimum notional" in await skills.place_order("BTC/USDT", "buy", 0.0001)
    assert (await skills.place_order("DOGE/EUR", "buy", 1)).startswith("error: unknown symbol")
    assert (await skills.cancel_order("nope")).startswith("error: no open order")
    assert (await skills.ticker("XYZ")).startswith("error: unknown symbol 'XYZ'")
    assert "insufficient BTC" in await skills.place_order("BTC/USDT", "sell", 0.01)


async def test_safe_mode_refuses_placement_but_reads_still_work(desk) -> None:
    desk.test_mode["now"] = "safe"
    text = await skills.place_order("BTC/USDT", "buy", 0.01)
    assert text.startswith("error: refused by the risk guard (safe_mode): the system is in safe mode")
    assert (await skills.cancel_order("paper-1")).startswith("error:")
    assert (await skills.ticker()).startswith("BTC/USDT last")
    assert await desk.intents.list() == []
    desk.test_mode["now"] = "normal"
    assert (await skills.place_order("BTC/USDT", "buy", 0.01)).startswith("placed")


async def test_outside_any_application_the_skills_say_there_is_no_desk() -> None:
    # No process-wide desk: a call outside an application's (or bind_desk's) block touches nothing.
    for text in (await skills.ticker(), await skills.place_order("BTC/USDT", "buy", 0.01)):
        assert text.startswith("error: no trading desk"), text
        assert "bind_desk" in text
