"""Price feeds for the paper exchange: replayed real candles (offline) or live public tickers.

A feed answers four questions: the current price (``ticker``), the price a market order placed
now trades at (``next_trade``), the price ranges seen since a moment (``bars_after``, for resting
limit orders) and the recent candles (``candles``). Market-data reads may be retried
(:func:`with_retries`, bounded); nothing here places orders.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import ccxt
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_exponential

from alina.trading.errors import ExchangeUnavailable
from alina.trading.market_data import TIMEFRAME_MS, Candle, MarketData
from alina.trading.orders import Ticker

__all__ = ["LiveTickerFeed", "PriceFeed", "ReplayFeed", "with_retries"]

T = TypeVar("T")
_TF = "5m"
_TF_MS = TIMEFRAME_MS[_TF]


async def with_retries(
    call: Callable[[], Awaitable[T]],
    what: str,
    retries: int = 2,
    base_delay_s: float = 0.25,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run a market-data read, retrying network errors up to ``retries`` times (backoff x2).

    Only for reads: order placement is never passed through here. Raises ExchangeUnavailable
    once the attempts are spent; other ccxt errors (bad symbol, ...) propagate at once.
    """
    retrying = AsyncRetrying(
        stop=stop_after_attempt(retries + 1),
        wait=wait_exponential(multiplier=base_delay_s),  # base, 2 x base, 4 x base...
        retry=retry_if_exception_type((ccxt.NetworkError, ccxt.BadResponse)),
        sleep=sleep,
    )
    try:
        async for attempt in retrying:  # `await retrying(call)` would not await a lambda's coroutine
            with attempt:
                return await call()
    except RetryError as err:
        exc = err.last_attempt.exception()
        raise ExchangeUnavailable(
            f"{what}: exchange unreachable after {retries + 1} attempt(s) ({type(exc).__name__})"
        ) from exc
    raise RuntimeError(f"{what}: the retry loop ended without a result or an error")  # unreachable


class PriceFeed(Protocol):
    """What the paper exchange needs to know about prices."""

    source: str

    def symbols(self) -> list[str]:
        """Symbols the feed can price."""
        ...

    def now_ms(self) -> int:
        """Current feed time (replay clock or wall clock), ms."""
        ...

    async def ticker(self, symbol: str) -> Ticker:
        """Current prices."""
        ...

    async def next_trade(self, symbol: str, side: str) -> tuple[float, float]:
        """``(price, volume)`` a market order placed now executes against (volume in base units)."""
        ...

    async def bars_after(self, symbol: str, ts_ms: int) -> list[Candle]:
        """Price ranges after ``ts_ms`` up to now, oldest first (for resting limit orders)."""
        ...

    async def candles(self, symbol: str, limit: int) -> list[Candle]:
        """The last ``limit`` candles up to now, oldest first (no look-ahead)."""
        ...


class ReplayFeed:
    """Real historical candles replayed on a clock that only moves when :meth:`advance` is called.

    The current candle is complete: its close is the last price. A market order placed now
    executes at the NEXT candle's open (the first price after the decision, no further
    look-ahead); resting orders are checked against each later candle's low/high.
    """

    source = "replay"

    def __init__(self, series: dict[str, list[Candle]], start_ts_ms: int | None = None) -> None:
        """``series``: symbol -> candles (oldest first). The clock starts at the candle at or
        before ``start_ts_ms`` (default: the first candle)."""
        if not series or not all(series.values()):
            raise ValueError("a replay needs at least one non-empty candle series")
        self._series = {s: list(c) for s, c in series.items()}
        self._ts = {s: [c.ts_ms for c in cs] for s, cs in self._series.items()}
        self._timeline = sorted({t for ts in self._ts.values() for t in ts})
        start = self._timeline[0] if start_ts_ms is None else start_ts_ms
        self._i = max(0, bisect.bisect_right(self._timeline, start) - 1)

    @classmethod
    def packaged(cls, start_hours_before_end: float = 168.0, market: MarketData | None = None) -> ReplayFeed:
        """The candles shipped in ``alina/trading/data``, clock ``start_hours_before_end`` before the end."""
        md = market or MarketData()
        series = {s: md.candles(s) for s in md.symbols}
        end = max(cs[-1].ts_ms for cs in series.values())
        return cls(series, start_ts_ms=end - int(start_hours_before_end * 3_600_000))

    def symbols(self) -> list[str]:
        """Symbols with candles."""
        return sorted(self._series)

    def now_ms(self) -> int:
        """Open time of the current candle."""
        return self._timeline[self._i]

    @property
    def remaining(self) -> int:
        """Clock steps left before the end of the data."""
        return len(self._timeline) - 1 - self._i

    def advance(self, steps: int = 1) -> int:
        """Move the clock ``steps`` candles forward (stops at the end); returns steps taken."""
        taken = max(0, min(int(steps), self.remaining))
        self._i += taken
        return taken

    def seek(self, ts_ms: int) -> None:
        """Put the clock on the candle at or before ``ts_ms`` (restoring a saved account)."""
        self._i = max(0, bisect.bisect_right(self._timeline, ts_ms) - 1)

    def _current(self, symbol: str) -> int:
        ts = self._ts.get(symbol)
        if ts is None:
            raise ExchangeUnavailable(f"no replay data for {symbol}; available: {', '.join(self.symbols())}")
        k = bisect.bisect_right(ts, self.now_ms()) - 1
        if k < 0:
            raise ExchangeUnavailable(f"the replay clock is before the first {symbol} candle")
        return k

    async def ticker(self, symbol: str) -> Ticker:
        """Close of the current candle (bid/ask unknown in candle data)."""
        c = self._series[symbol][self._current(symbol)]
        return Ticker(symbol, c.close, None, None, c.ts_ms, self.source)

    async def next_trade(self, symbol: str, side: str) -> tuple[float, float]:
        """Open and volume of the next candle; ExchangeUnavailable at the end of the data."""
        k = self._current(symbol) + 1
        if k >= len(self._series[symbol]):
            raise ExchangeUnavailable(
                f"the replay reached the end of the {symbol} data: there is no next price to fill at"
            )
        c = self._series[symbol][k]
        return c.open, c.volume

    async def bars_after(self, symbol: str, ts_ms: int) -> list[Candle]:
        """Candles with ``ts_ms < open time <= now``."""
        ts, k = self._ts[symbol], self._current(symbol)
        lo = bisect.bisect_right(ts, ts_ms)
        return self._series[symbol][lo : k + 1]

    async def candles(self, symbol: str, limit: int) -> list[Candle]:
        """The last ``limit`` candles up to and including the current one."""
        k = self._current(symbol)
        return self._series[symbol][max(0, k + 1 - limit) : k + 1]


class LiveTickerFeed:
    """Public tickers and candles of a real exchange (no keys), for paper trading on live prices.

    Market orders execute at the ask (buy) or bid (sell), falling back to the last price; the
    volume used for slippage is a 5-minute share of the 24 h base volume. Resting orders are
    checked against each newly seen last price (a ticker is one point, not a range).
    """

    source = "live"

    def __init__(self, exchange: Any, retries: int = 2, clock: Callable[[], int] | None = None) -> None:
        """``exchange``: a ccxt async instance with markets loaded; ``clock``: ms wall clock."""
        self._ex = exchange
        self._retries = retries
        self._clock = clock or (lambda: int(exchange.milliseconds()))

    def symbols(self) -> list[str]:
        """Every market symbol of the exchange."""
        return sorted(self._ex.markets or {})

    def now_ms(self) -> int:
        """Wall clock, ms."""
        return self._clock()

    async def _raw(self, symbol: str) -> dict[str, Any]:
        return dict(
            await with_retries(lambda: self._ex.fetch_ticker(symbol), f"ticker {symbol}", self._retries)
        )

    async def ticker(self, symbol: str) -> Ticker:
        """The exchange's ticker (bounded retries)."""
        t = await self._raw(symbol)
        last = t.get("last") or t.get("close")
        if last is None or not math.isfinite(float(last)):
            raise ExchangeUnavailable(f"ticker {symbol}: the exchange returned no last price")
        ts = int(t.get("timestamp") or self.now_ms())
        return Ticker(symbol, float(last), _opt(t.get("bid")), _opt(t.get("ask")), ts, self.source)

    async def next_trade(self, symbol: str, side: str) -> tuple[float, float]:
        """Ask (buy) or bid (sell), else last; volume = 24 h base volume / 288."""
        t = await self.ticker(symbol)
        price = (t.ask if side == "buy" else t.bid) or t.last
        raw = await self._raw(symbol)
        volume = float(raw.get("baseVolume") or 0.0) / (86_400_000 / _TF_MS)
        return price, volume

    async def bars_after(self, symbol: str, ts_ms: int) -> list[Candle]:
        """The current last price as a one-point bar, if it is newer than ``ts_ms``."""
        t = await self.ticker(symbol)
        if t.timestamp <= ts_ms:
            return []
        return [Candle(t.timestamp, t.last, t.last, t.last, t.last, 0.0)]

    async def candles(self, symbol: str, limit: int) -> list[Candle]:
        """Recent 5m candles from ``fetch_ohlcv`` (bounded retries)."""
        rows = await with_retries(
            lambda: self._ex.fetch_ohlcv(symbol, _TF, limit=limit), f"candles {symbol}", self._retries
        )
        return [Candle(int(r[0]), *(float(x or 0.0) for x in r[1:6])) for r in rows]


def _opt(x: Any) -> float | None:
    return float(x) if x is not None else None
