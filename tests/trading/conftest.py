"""Fixtures for the trading tests: market rules from the packaged file, real candles, builders.

``rules`` loads the packaged Binance markets once per session through ccxt's ``set_markets``
(no network). ``btc`` is the packaged BTC/USDT 5m series (real data). ``make_paper`` builds a
paper exchange on a replay of that data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from alina.trading.config import SlippageConfig, resolve_markets_file
from alina.trading.feeds import ReplayFeed
from alina.trading.market_data import Candle, MarketData
from alina.trading.markets import MarketRules
from alina.trading.paper import PaperExchange

MARKETS_FILE = resolve_markets_file("binance_markets_subset_ticksize.json")


def load_rules() -> MarketRules:
    """Fresh rules from the packaged markets file (offline)."""
    return MarketRules.from_file("binance", MARKETS_FILE)


_RULES: MarketRules | None = None
_BTC: list[Candle] | None = None


def shared_rules() -> MarketRules:
    """One MarketRules for the whole session (ccxt instances are slow to build)."""
    global _RULES
    if _RULES is None:
        _RULES = load_rules()
    return _RULES


def btc_candles() -> list[Candle]:
    """The packaged BTC/USDT 5m candles (real data, cached)."""
    global _BTC
    if _BTC is None:
        _BTC = MarketData().candles("BTC/USDT")
    return _BTC


def candles(
    rows: list[tuple[float, float, float, float]], start_ms: int = 1_675_000_000_000, volume: float = 100.0
) -> list[Candle]:
    """Hand-made 5m candles from ``(open, high, low, close)`` rows."""
    return [Candle(start_ms + i * 300_000, o, h, lo, c, volume) for i, (o, h, lo, c) in enumerate(rows)]


@pytest.fixture(scope="session")
def rules() -> MarketRules:
    return shared_rules()


@pytest.fixture(scope="session")
def btc() -> list[Candle]:
    return btc_candles()


@pytest.fixture
def make_paper(rules: MarketRules) -> Callable[..., PaperExchange]:
    """Build a PaperExchange on given series (default: real BTC/USDT from candle ``start``)."""

    def build(
        series: dict[str, list[Candle]] | None = None,
        start: int = 100,
        balances: dict[str, float] | None = None,
        slippage: SlippageConfig | None = None,
        **kw: Any,
    ) -> PaperExchange:
        data = series if series is not None else {"BTC/USDT": btc_candles()}
        first = min(cs[0].ts_ms for cs in data.values())
        feed = ReplayFeed(data, start_ts_ms=first + start * 300_000)
        return PaperExchange(rules, feed, "USDT", balances or {"USDT": 10_000.0}, slippage, **kw)

    return build
