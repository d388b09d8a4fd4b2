"""Price feeds: the replay never looks ahead; market-data reads retry a bounded number of times."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from alina.trading.errors import ExchangeUnavailable
from alina.trading.feeds import LiveTickerFeed, ReplayFeed, with_retries


async def _no_sleep(_: float) -> None:
    return None


async def test_replay_serves_only_the_past_and_the_next_open(btc) -> None:
    feed = ReplayFeed({"BTC/USDT": btc}, start_ts_ms=btc[500].ts_ms + 1)
    assert feed.now_ms() == btc[500].ts_ms
    assert (await feed.ticker("BTC/USDT")).last == btc[500].close
    assert await feed.next_trade("BTC/USDT", "buy") == (btc[501].open, btc[501].volume)
    assert (await feed.candles("BTC/USDT", 3)) == btc[498:501]
    assert await feed.bars_after("BTC/USDT", btc[500].ts_ms) == []
    assert feed.advance(2) == 2
    assert await feed.bars_after("BTC/USDT", btc[500].ts_ms) == btc[501:503]
    assert feed.advance(10**9) == len(btc) - 503
    with pytest.raises(ExchangeUnavailable, match="end of the BTC/USDT data"):
        await feed.next_trade("BTC/USDT", "buy")


def test_packaged_replay_starts_a_week_before_the_end(btc) -> None:
    feed = ReplayFeed.packaged(168)
    assert feed.symbols() == ["BTC/USDT"]
    assert feed.remaining == 168 * 12


async def test_with_retries_is_bounded_and_only_for_network_errors() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ccxt.RequestTimeout("timeout")
        return "ok"

    assert await with_retries(flaky, "ticker", retries=2, sleep=_no_sleep) == "ok" and len(calls) == 3
    calls.clear()

    async def down() -> str:
        calls.append(1)
        raise ccxt.ExchangeNotAvailable("maintenance")

    with pytest.raises(ExchangeUnavailable, match="after 3 attempt"):
        await with_retries(down, "ticker", retries=2, sleep=_no_sleep)
    assert len(calls) == 3
    calls.clear()

    async def bad_symbol() -> str:
        calls.append(1)
        raise ccxt.BadSymbol("no such market")

    with pytest.raises(ccxt.BadSymbol):
        await with_retries(bad_symbol, "ticker", retries=5, sleep=_no_sleep)
    assert len(calls) == 1


class _StubExchange:
    """Stands in for a ccxt instance's public methods (unit test of the feed's logic only)."""

    markets = {"BTC/USDT": {}}

    def __init__(self) -> None:
        self.failures = 1
        self.t = 1_700_000_000_000

    def milliseconds(self) -> int:
        return self.t

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ccxt.NetworkError("blip")
        return {
            "symbol": symbol,
            "last": 100.0,
            "bid": 99.9,
            "ask": 100.1,
            "timestamp": self.t,
            "baseVolume": 288_000.0,
        }

    async def fetch_ohlcv(self, symbol: str, timeframe: str, limit: int) -> list[list[float]]:
        return [[self.t - 300_000 * i, 1, 2, 0.5, 1.5, 10] for i in range(limit)][::-1]


async def test_live_ticker_feed_prices_and_retries() -> None:
    stub = _StubExchange()
    feed = LiveTickerFeed(stub, retries=1)
    import alina.trading.feeds as feeds

    feeds_sleep = feeds.asyncio.sleep
    try:
        feeds.asyncio.sleep = _no_sleep  # type: ignore[assignment]
        t = await feed.ticker("BTC/USDT")
    finally:
        feeds.asyncio.sleep = feeds_sleep  # type: ignore[assignment]
    assert (t.last, t.bid, t.ask, t.source) == (100.0, 99.9, 100.1, "live")
    assert await feed.next_trade("BTC/USDT", "buy") == (100.1, 1000.0)  # ask; 24h volume / 288
    assert await feed.next_trade("BTC/USDT", "sell") == (99.9, 1000.0)
    (bar,) = await feed.bars_after("BTC/USDT", stub.t - 1)
    assert bar.low == bar.high == 100.0
    assert await feed.bars_after("BTC/USDT", stub.t) == []
    assert len(await feed.candles("BTC/USDT", 5)) == 5
