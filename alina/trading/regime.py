"""Market regime: trend, volatility against its own recent past, and where price sits in its range.

Computed from candles up to "now" only (the replay clock in paper-replay mode), so it never
looks ahead. Rules (all on 5m candles by default):

* trend: :func:`alina.trading.market_data.summarize` over the last 24 h (change and regression
  line must agree, threshold 0.5 %);
* volatility: the last 24 h's std-dev of log returns against the median of the earlier 24 h
  windows in the history given (up to 7 days): ratio >= 1.5 "high", <= 0.67 "low", else "normal";
* range position: last close within the 24 h low..high, in %;
* momentum: 1 h simple moving average of closes above or below the 4 h one.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from alina.trading.market_data import (
    BASE_TIMEFRAME,
    TIMEFRAME_MS,
    Candle,
    format_price,
    iso_utc,
    summarize,
)

__all__ = ["Regime", "market_regime"]

HIGH_VOL_RATIO = 1.5
LOW_VOL_RATIO = 0.67


@dataclass(frozen=True)
class Regime:
    """Numbers behind the regime label."""

    symbol: str
    at_ms: int
    close: float
    trend: str
    change_pct: float
    volatility_pct: float
    baseline_volatility_pct: float
    volatility: str
    range_position_pct: float
    momentum: str

    @property
    def label(self) -> str:
        """E.g. ``"trending up, high volatility"`` or ``"ranging, normal volatility"``."""
        shape = {"uptrend": "trending up", "downtrend": "trending down"}.get(self.trend, "ranging")
        return f"{shape}, {self.volatility} volatility"

    def to_text(self) -> str:
        """One short line for a small model."""
        ratio = self.volatility_pct / self.baseline_volatility_pct if self.baseline_volatility_pct else 1.0
        return (
            f"{self.symbol} regime at {iso_utc(self.at_ms)}: {self.label}. "
            f"24h change {self.change_pct:+.2f}%, volatility {self.volatility_pct:.3f}%/5m "
            f"({ratio:.2f}x its recent median), close {format_price(self.close)} at "
            f"{self.range_position_pct:.0f}% of the 24h range, momentum {self.momentum}"
        )


def _vol(closes: list[float]) -> float:
    rets = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False) if a > 0 and b > 0]
    return statistics.stdev(rets) * 100 if len(rets) >= 2 else 0.0


def _sma(values: list[float], n: int) -> float:
    window = values[-n:]
    return sum(window) / len(window)


def market_regime(candles: list[Candle], symbol: str, timeframe: str = BASE_TIMEFRAME) -> Regime:
    """Classify the regime at the last candle of ``candles`` (oldest first).

    Raises:
        ValueError: if ``candles`` is empty.
    """
    if not candles:
        raise ValueError(f"no candles for {symbol}")
    day = max(2, 86_400_000 // TIMEFRAME_MS.get(timeframe, 300_000))
    summary = summarize(candles, symbol, 24.0, timeframe)
    recent = candles[-day:]
    closes = [c.close for c in candles]
    vol = _vol([c.close for c in recent])
    week = closes[-7 * day :]
    earlier = [week[max(0, end - day) : end] for end in range(len(week) - day, 0, -day)]
    baseline_vols = [_vol(w) for w in earlier if len(w) >= day // 2]
    baseline = statistics.median(baseline_vols) if baseline_vols else vol
    ratio = vol / baseline if baseline > 0 else 1.0
    label = "high" if ratio >= HIGH_VOL_RATIO else "low" if ratio <= LOW_VOL_RATIO else "normal"
    lo, hi = min(c.low for c in recent), max(c.high for c in recent)
    position = (closes[-1] - lo) / (hi - lo) * 100 if hi > lo else 50.0
    per_hour = max(1, 3_600_000 // TIMEFRAME_MS.get(timeframe, 300_000))
    fast, slow = _sma(closes, per_hour), _sma(closes, 4 * per_hour)
    momentum = "up (1h average above 4h)" if fast > slow else "down (1h average below 4h)"
    return Regime(
        symbol=symbol,
        at_ms=candles[-1].ts_ms,
        close=closes[-1],
        trend=summary.trend,
        change_pct=summary.change_pct,
        volatility_pct=vol,
        baseline_volatility_pct=baseline,
        volatility=label,
        range_position_pct=position,
        momentum=momentum,
    )
