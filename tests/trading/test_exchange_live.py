"""The live gate (all three opt-ins) and the live adapter over ccxt, against a canned Binance."""

from __future__ import annotations

import itertools
import logging

import pytest

from alina.trading.config import TradingConfig
from alina.trading.desk import TradingDesk
from alina.trading.errors import (
    DuplicateClientOrderId,
    ExchangeUnavailable,
    LiveTradingRefused,
    OrderRejected,
)
from alina.trading.exchange import LiveExchange, live_gate, open_exchange
from alina.trading.intents import MemoryIntentStore
from alina.trading.orders import OrderRequest
from alina.trading.paper import PaperExchange
from alina.trading.risk import RiskGuard
from tests.trading._binance_http import install

KEY, SECRET = "PLANTEDkey0123456789abcdefAPI", "PLANTEDsecret9876543210zyxSEC"
ENV = {"ALINA_EXCHANGE_API_KEY": KEY, "ALINA_EXCHANGE_API_SECRET": SECRET}


@pytest.mark.parametrize(("mode", "key", "secret", "flag"), list(itertools.product([0, 1], repeat=4)))
async def test_live_needs_all_three_and_says_what_is_missing(monkeypatch, mode, key, secret, flag) -> None:
    install(monkeypatch)
    cfg = TradingConfig(mode="live" if mode else "paper")
    env = {k: v for k, v, on in zip(ENV, ENV.values(), (key, secret), strict=True) if on}
    missing = live_gate(cfg, bool(flag), env)
    if not (mode or flag):
        ex = await open_exchange(cfg, live=False, environ=env)  # plain paper: nothing to refuse
        assert isinstance(ex, PaperExchange)
        return
    if mode and key and secret and flag:
        assert missing == []
        ex = await open_exchange(cfg, live=True, environ=env)
        assert isinstance(ex, LiveExchange)
        await ex.close()
        return
    with pytest.raises(LiveTradingRefused) as info:
        await open_exchange(cfg, live=bool(flag), environ=env)
    text = str(info.value)
    assert info.value.missing == missing and len(missing) == 4 - (mode + key + secret + flag)
    assert ("trading.mode is 'paper'" in text) == (not mode)
    assert ("ALINA_EXCHANGE_API_KEY (API key) is not set" in text) == (not key)
    assert ("ALINA_EXCHANGE_API_SECRET (API secret) is not set" in text) == (not secret)
    assert ("not given --live" in text) == (not flag)
    assert KEY not in text and SECRET not in text


async def test_live_adapter_round_trip_through_ccxt(monkeypatch, caplog) -> None:
    double = install(monkeypatch)
    caplog.set_level(logging.DEBUG)
    ex = await open_exchange(TradingConfig(mode="live"), live=True, environ=ENV)
    assert isinstance(ex, LiveExchange)
    assert KEY not in repr(ex) and SECRET not in repr(ex) and KEY not in str(vars(ex))

    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.01, client_order_id="alinaA"))
    assert (order.client_order_id, order.status, order.filled) == ("alinaA", "closed", 0.01)
    assert double.requests[-1][2]["X-MBX-APIKEY"] == KEY  # the key goes to the exchange, and only there
    found = await ex.fetch_order_by_client_id("alinaA", "BTC/USDT")
    assert found is not None and found.id == order.id
    assert await ex.fetch_order_by_client_id("never-sent", "BTC/USDT") is None

    with pytest.raises(DuplicateClientOrderId):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.01, client_order_id="alinaA"))
    double.next_fault = "reject"
    with pytest.raises(OrderRejected, match="insufficient balance"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.01))
    double.next_fault = "timeout_leaking_headers"
    with pytest.raises(ExchangeUnavailable) as info:
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.01))
    assert KEY not in str(info.value) and "***" in str(info.value)
    posts = [r for r in double.requests if r[0] == "POST"]
    assert len(posts) == 4  # placement is never retried

    resting = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.01, 23_000.0, "alinaB"))
    assert [o.client_order_id for o in await ex.fetch_open_orders("BTC/USDT")] == ["alinaB"]
    assert (await ex.cancel_order(resting.id, "BTC/USDT")).status == "canceled"
    view = await ex.account_view(("BTC/USDT",))
    assert view.positions == {"BTC/USDT": 0.05} and view.equity == pytest.approx(10_000 + 0.05 * 23_775.3)
    assert (await ex.fetch_ticker("BTC/USDT")).ask == pytest.approx(23_775.4)
    await ex.close()
    assert KEY not in caplog.text and SECRET not in caplog.text


async def test_live_desk_cancels_by_exchange_id_and_records_intents(monkeypatch) -> None:
    double = install(monkeypatch)
    ex = await open_exchange(TradingConfig(mode="live"), live=True, environ=ENV)
    desk = TradingDesk(ex, RiskGuard(TradingConfig().risk), MemoryIntentStore())
    placed = await desk.place_order("BTC/USDT", "buy", "limit", 0.01, 23_500.0)
    assert placed.order is not None and placed.order.status == "open"
    sent = double.orders[placed.client_order_id]
    assert sent["cid"] == placed.client_order_id  # the intent's id is the exchange's client order id
    canceled = await desk.cancel_order(placed.order.id)  # no symbol given: found among open orders
    assert canceled.status == "canceled"
    assert (await desk.intents.get(placed.client_order_id)).order_status == "canceled"  # type: ignore[union-attr]
    await desk.close()
