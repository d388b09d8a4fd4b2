"""Market regime labels on shaped series, and no look-ahead on the real replay."""

from __future__ import annotations

import math

import pytest

from alina.trading.market_data import Candle
from alina.trading.regime import market_regime


def series(closes: list[float]) -> list[Candle]:
    return [
        Candle(1_675_000_000_000 + i * 300_000, c, c * 1.001, c * 0.999, c, 1.0) for i, c in enumerate(closes)
    ]


def test_trending_up_with_high_volatility() -> None:
    calm = [100 + 0.05 * math.sin(i) for i in range(288 * 3)]
    wild = [calm[-1] * (1 + 0.0004 * i) * (1 + 0.01 * math.sin(i)) for i in range(288)]
    r = market_regime(series(calm + wild), "BTC/USDT")
    assert r.trend == "uptrend" and r.volatility == "high" and r.label == "trending up, high volatility"
    assert "regime at" in r.to_text() and len(r.to_text()) < 300


def test_ranging_and_low_volatility() -> None:
    wild = [100 * (1 + 0.01 * math.sin(i)) for i in range(288 * 3)]
    calm = [100 + 0.01 * math.sin(i) for i in range(288)]
    r = market_regime(series(wild + calm), "X/USDT")
    assert (r.trend, r.volatility) == ("sideways", "low")
    assert 0 <= r.range_position_pct <= 100


def test_short_history_and_empty() -> None:
    r = market_regime(series([100, 101, 102]), "X/USDT")
    assert r.volatility == "normal"
    with pytest.raises(ValueError):
        market_regime([], "X/USDT")


def test_regime_at_a_point_ignores_later_candles(btc) -> None:
    cut = 5000
    assert market_regime(btc[: cut + 1], "BTC/USDT") == market_regime(btc[cut - 2015 : cut + 1], "BTC/USDT")
