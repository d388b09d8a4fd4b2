"""The window and pair the user's request names reach the tool, whatever the model wrote;
every trading skill's `symbol` is an enum of the known markets (issue 12 item 2)."""

from __future__ import annotations

import json
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.agents import build_tool
from alina.config import AlinaConfig
from alina.models import ResilientClient
from alina.models import _protocol as proto
from alina.skills import trading as trading_skills
from alina.skills.bindings import bind_desk
from alina.skills.builtin import candle_summary, get_price
from alina.skills.context import RunContext, run_context
from alina.skills.loader import default_loader
from alina.skills.task_args import (
    TaskArguments,
    named_order_id,
    named_pair,
    named_window_hours,
    task_arguments,
)
from alina.team import MemorySink, TeamRunner
from alina.trading.config import TradingConfig
from alina.trading.desk import TradingDesk, open_desk
from alina.trading.mandate import Mandate, packaged_symbols
from alina.trading.market_data import MarketData
from tests.scripted import INFO

# --------------------------------------------------------------------------- reading the request


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("What is the BTC/USDT trend over the last 6 hours?", 6),
        ("How did bitcoin move over the past 2 days?", 48),
        ("Summarise ETH for the last week", 168),
        ("in the last hour", 1),
        ("the previous day", 24),
        ("24h change of BTC", 24),
        ("a 2-day window", 48),
        ("six hours of data", 6),
        ("last 30 minutes", 0.5),
        ("over the last 3 hours using 5m candles", 3),  # a candle size is not a window
        ("the last 6 hours, that is the past 6 hours", 6),  # the same window twice
        ("compare the last day with the last week", None),  # two windows: ambiguous
        ("What is the trend today?", None),
        ("over the last few days", None),
        ("What is the price of BTC?", None),
    ],
)
def test_named_window_hours(text: str, hours: float | None) -> None:
    assert named_window_hours(text) == hours


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("What is the BTC/USDT trend?", "BTC/USDT"),
        ("price of eth", "ETH/USDT"),
        ("how did bitcoin do, and BTC in general", "BTC/USDT"),
        ("btcusdt over 6 hours", "BTC/USDT"),
        ("DOGE-USDT", "DOGE/USDT"),
        ("the SOL/USDT trend", "SOL/USDT"),  # named but unknown: the tool will say so
        ("BTC or ETH?", None),  # two pairs: ambiguous
        ("What is the trend over the last 6 hours?", None),
        ("Show my USDT balance", None),  # a quote currency is no pair
    ],
)
def test_named_pair(text: str, pair: str | None) -> None:
    assert named_pair(text) == pair


@pytest.mark.parametrize(
    ("text", "order_id"),
    [
        ("Cancel order paper-3", "paper-3"),
        ("cancel order id 123456", "123456"),
        ("cancel order #42", "42"),
        ("please cancel paper-7", "paper-7"),
        ("cancel paper-7 and paper-8", None),  # two ids: ambiguous
        ("Cancel my open orders", None),
        ("Cancel the BTC/USDT order", None),
        ("the order of 0.01 BTC", None),
    ],
)
def test_named_order_id(text: str, order_id: str | None) -> None:
    assert named_order_id(text) == order_id


def test_quoted_or_pasted_material_names_nothing() -> None:
    assert task_arguments('Summarise this news: "ETH fell 5% in the past week"') == TaskArguments()
    assert task_arguments("Summarise this news: ETH fell 5% in the past week") == TaskArguments()


def test_outside_a_run_nothing_is_named_and_the_callers_arguments_stand() -> None:
    assert task_arguments() == TaskArguments()
    assert "last 24h" in candle_summary()
    assert "last 4h" in candle_summary(hours=4)


# --------------------------------------------------------------------------- tools in a run


def in_run(task: str) -> Any:
    return run_context(RunContext(task))


def test_candle_summary_uses_the_window_and_pair_of_the_request() -> None:
    md = MarketData()
    with in_run("What is the BTC/USDT trend over the last 6 hours?"):
        assert candle_summary("BTC/USDT", 24) == md.summary("BTC/USDT", 6).to_text()
        assert "last 6h" in candle_summary()
    with in_run("How did bitcoin move over the past 2 days?"):
        assert "last 48h" in candle_summary(hours=1)
    with in_run("What is the BTC trend?"):  # no window named: the model's stands
        assert "last 12h" in candle_summary(hours=12)
    with in_run("Compare the last day with the last week for BTC"):  # ambiguous: the model's stands
        assert "last 24h" in candle_summary(hours=24)


def test_a_named_pair_without_data_is_reported_not_swapped_for_another() -> None:
    with in_run("What is the price of ETH?"):
        assert get_price("BTC/USDT").startswith("error: unknown symbol 'ETH/USDT'")
    with in_run("ETH trend over the last 6 hours"):
        assert candle_summary("BTC/USDT", 24).startswith("error: unknown symbol 'ETH/USDT'")


@pytest.fixture
async def desk() -> AsyncIterator[TradingDesk]:
    d = await open_desk(TradingConfig())
    with bind_desk(d):
        yield d
    await d.close()


async def test_trading_skills_use_the_pair_of_the_request(desk: TradingDesk) -> None:
    with in_run("What does the ETH ticker say?"):
        assert (await trading_skills.ticker("BTC/USDT")).startswith("error: unknown symbol 'ETH/USDT'")
        assert (await trading_skills.market_regime("BTC/USDT")).startswith("error: unknown symbol 'ETH/USDT'")
    with in_run("BTC/USDT ticker please"):
        assert (await trading_skills.ticker("ADA/USDT")).startswith("BTC/USDT last ")
    last = (await desk.ticker("BTC/USDT")).last
    await desk.place_order("BTC/USDT", "buy", "limit", 0.01, round(last * 0.98, 2))  # rests
    with in_run("List my open orders"):  # no pair named: all pairs, whatever the model filtered on
        assert "BTC/USDT" in await trading_skills.open_orders("ETH/USDT")
    with in_run("List my open ETH/USDT orders"):  # the paper desk has no ETH/USDT: it says so
        assert (await trading_skills.open_orders("")).startswith("error: unknown symbol 'ETH/USDT'")


async def test_cancel_order_cancels_the_order_the_request_names(desk: TradingDesk) -> None:
    last = (await desk.ticker("BTC/USDT")).last
    await desk.place_order("BTC/USDT", "buy", "limit", 0.01, round(last * 0.98, 2))
    await desk.place_order("BTC/USDT", "buy", "limit", 0.01, round(last * 0.97, 2))
    [first, second] = [o.id for o in await desk.open_orders()]
    with run_context(
        RunContext(
            f"Cancel order {second}",
            run_id="r",
            mandate=Mandate.from_request(f"Cancel order {second}", packaged_symbols()),
        )
    ):
        out = await trading_skills.cancel_order("12345678901234567890")  # the model's made-up id
    assert out.startswith(f"canceled order {second}"), out
    assert [o.id for o in await desk.open_orders()] == [first]


# --------------------------------------------------------------------------- schemas


def _symbol_schemas() -> dict[str, dict[str, Any]]:
    tools = [build_tool(s, "trader") for s in default_loader().skills_for("trader")]
    specs = proto.tool_specs(tools)
    return {
        s.name: s.parameters["properties"]["symbol"] for s in specs if "symbol" in s.parameters["properties"]
    }


def test_every_trading_skill_constrains_symbol_to_the_known_markets() -> None:
    markets = set(packaged_symbols())
    schemas = _symbol_schemas()
    takes_symbol = {
        f.__name__
        for f in trading_skills.TRADING_SKILLS
        if "symbol" in typing.get_type_hints(f)  # every skill that takes a pair
    }
    assert takes_symbol == {"ticker", "open_orders", "place_order", "market_regime"}
    for name in takes_symbol:
        enum = schemas[name]["enum"]
        assert set(enum) - {""} == markets, name
        assert ("" in enum) == (name == "open_orders"), name  # "" = all pairs, for the listing only
    assert "BEGIN_TITLE" not in schemas["ticker"]["enum"]
    # The built-in tools keep their enum of the pairs with bundled data.
    assert schemas["get_price"].get("enum", [schemas["get_price"].get("const")]) == ["BTC/USDT"]


# --------------------------------------------------------------------------- a scripted team run


def _call(name: str, args: dict[str, Any]) -> CreateResult:
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id="c0", name=name, arguments=json.dumps(args))],
        usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
        cached=False,
    )


@pytest.mark.parametrize("args", [{"symbol": "BTC/USDT", "hours": 24}, {}], ids=["wrong-hours", "default"])
async def test_a_scripted_trader_with_the_wrong_window_still_reports_the_asked_one(
    args: dict[str, Any],
) -> None:
    scripted = {
        "trader": ReplayChatCompletionClient([_call("candle_summary", args), "Down 3%."], model_info=INFO),  # type: ignore[arg-type]
        "monitor": ReplayChatCompletionClient([_call("system_health", {})], model_info=INFO),  # type: ignore[arg-type]
        "alina": ReplayChatCompletionClient(["Down 3% over 6 hours."], model_info=INFO),  # type: ignore[arg-type]
        "optimizer": ReplayChatCompletionClient([], model_info=INFO),  # type: ignore[arg-type]
        "selector": ReplayChatCompletionClient([], model_info=INFO),  # type: ignore[arg-type]
    }
    clients = {n: ResilientClient(n, c, retries=0) for n, c in scripted.items()}
    result = await TeamRunner(AlinaConfig(), sink=MemorySink(), clients=clients).run(
        "What is the BTC/USDT trend over the last 6 hours?"
    )
    assert result.status == "completed", result.error
    out = next(e.content for e in result.events if e.type == "ToolCallExecutionEvent")
    assert "BTC/USDT 5m, last 6h of data" in out and "72 candles" in out
