"""The paper exchange's fill rules on real replayed BTC/USDT candles and on hand-made ones."""

from __future__ import annotations

import math

import pytest

from alina.trading.config import SlippageConfig
from alina.trading.errors import DuplicateClientOrderId, OrderRejected
from alina.trading.orders import OrderRequest
from alina.trading.paper import slippage_bps
from tests.trading.conftest import candles

ZERO_SLIP = SlippageConfig(base_bps=0, impact_bps=0, max_bps=0)


async def test_market_buy_fills_at_next_open_with_slippage_and_taker_fee(make_paper, btc, rules) -> None:
    ex = make_paper(start=100)
    now, nxt = btc[100], btc[101]
    assert (await ex.fetch_ticker("BTC/USDT")).last == now.close  # the current candle's close
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.0123456))

    amount = 0.01234  # ccxt amount_to_precision truncates to the 1e-5 step
    bps = 2.0 + 100.0 * amount / nxt.volume
    expected = float(rules.price_to_precision("BTC/USDT", nxt.open * (1 + bps / 10_000)))
    assert order.status == "closed" and order.amount == order.filled == amount
    assert order.average == pytest.approx(expected, abs=1e-9)
    taker = rules.market("BTC/USDT")["taker"]
    assert order.fee == pytest.approx(amount * expected * taker)
    (fill,) = ex.fills
    assert (fill.liquidity, fill.fee_rate) == ("taker", taker)
    bal = await ex.fetch_balance()
    assert bal["BTC"].total == pytest.approx(amount)
    assert bal["USDT"].free == pytest.approx(10_000 - amount * expected * (1 + taker))  # fee in quote


async def test_market_sell_slips_down_and_realizes_pnl(make_paper, btc) -> None:
    ex = make_paper(start=200, balances={"USDT": 1000.0, "BTC": 0.05}, slippage=SlippageConfig(base_bps=10))
    await ex.fetch_ticker("BTC/USDT")  # first sync: seed holdings get the start price as entry
    order = await ex.create_order(OrderRequest("BTC/USDT", "sell", "market", 0.02))
    assert order.average is not None and order.average < btc[201].open
    (pos,) = await ex.fetch_positions()
    assert pos.amount == pytest.approx(0.03)
    assert pos.realized_pnl == pytest.approx((order.average - btc[200].close) * 0.02)


async def test_limit_buy_rests_then_fills_at_limit_as_maker(make_paper, rules) -> None:
    series = {
        "BTC/USDT": candles(
            [
                (100.0, 101.0, 99.0, 100.0),  # now
                (100.5, 101.0, 99.5, 100.0),  # next open 100.5 > 99.0: the buy rests
                (100.0, 100.2, 99.2, 99.6),  # low 99.2: not yet
                (99.6, 99.9, 98.7, 99.0),  # low 98.7 <= 99.0: fills at 99.0
                (99.0, 99.5, 98.0, 98.5),
            ]
        )
    }
    ex = make_paper(series, start=0, slippage=ZERO_SLIP)
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.1, 99.0))
    assert order.status == "open"
    bal = await ex.fetch_balance()
    maker = rules.market("BTC/USDT")["maker"]
    assert bal["USDT"].used == pytest.approx(0.1 * 99.0 * (1 + maker))  # reserved with the fee
    await ex.advance(2)  # lows 99.5 and 99.2 stay above the limit
    assert (await ex.fetch_open_orders())[0].id == order.id
    await ex.advance(1)
    assert (await ex.fetch_open_orders()) == []
    (fill,) = ex.fills
    assert (fill.price, fill.liquidity, fill.fee) == (99.0, "maker", pytest.approx(0.1 * 99.0 * maker))
    assert fill.timestamp == series["BTC/USDT"][3].ts_ms
    bal = await ex.fetch_balance()
    assert bal["USDT"].used == 0 and bal["USDT"].free == pytest.approx(10_000 - 9.9 * (1 + maker))


async def test_marketable_limit_fills_at_once_as_taker_never_beyond_limit(make_paper, rules) -> None:
    series = {"BTC/USDT": candles([(100.0, 100, 100, 100.0), (100.0, 100, 100, 100.0), (100, 100, 100, 100)])}
    ex = make_paper(series, start=0, slippage=SlippageConfig(base_bps=50, impact_bps=0, max_bps=500))
    # next open 100 <= limit 100.2: marketable; slipped price 100.5 is capped at the limit
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.1, 100.2))
    assert order.status == "closed" and order.average == 100.2
    assert ex.fills[0].liquidity == "taker"
    order = await ex.create_order(OrderRequest("BTC/USDT", "sell", "limit", 0.06, 99.0))
    assert order.status == "closed" and order.average == 99.5  # 100 - 0.5 %, above the limit
    assert (await ex.fetch_balance())["USDT"].used == 0


async def test_limit_sell_fills_when_high_reaches_it(make_paper) -> None:
    series = {"BTC/USDT": candles([(100, 100, 100, 100), (100, 100.5, 99, 100), (100, 101.2, 99.8, 101)])}
    ex = make_paper(series, start=0, balances={"USDT": 0.0, "BTC": 1.0}, slippage=ZERO_SLIP)
    order = await ex.create_order(OrderRequest("BTC/USDT", "sell", "limit", 0.5, 101.0))
    assert (await ex.fetch_balance())["BTC"].used == 0.5
    await ex.advance(1)
    assert order.status == "open"
    await ex.advance(1)
    assert order.status == "closed" and order.average == 101.0


async def test_cancel_releases_reservation_and_cannot_repeat(make_paper) -> None:
    ex = make_paper(start=300)
    last = (await ex.fetch_ticker("BTC/USDT")).last
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.01, round(last * 0.9, 2)))
    canceled = await ex.cancel_order(order.client_order_id)  # by client id works too
    assert canceled.status == "canceled"
    bal = await ex.fetch_balance()
    assert bal["USDT"].used == 0 and bal["USDT"].free == pytest.approx(10_000)
    with pytest.raises(OrderRejected, match="already canceled"):
        await ex.cancel_order(order.id)
    with pytest.raises(OrderRejected, match="no order"):
        await ex.cancel_order("nope")


async def test_rounding_and_limits_use_ccxt_helpers(make_paper) -> None:
    ex = make_paper(start=100)
    last = (await ex.fetch_ticker("BTC/USDT")).last
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.0100009, last * 0.97 + 0.004321))
    assert order.amount == 0.01 and order.price is not None
    assert order.price == round(order.price, 2)  # tick 0.01
    with pytest.raises(OrderRejected, match="minimum notional 5"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.0001))
    with pytest.raises(OrderRejected, match="step size"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.000001))
    with pytest.raises(OrderRejected, match="market-order maximum"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 500))


async def test_funds_duplicates_and_symbols(make_paper) -> None:
    ex = make_paper(start=100, balances={"USDT": 100.0})
    with pytest.raises(OrderRejected, match="insufficient USDT"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.01))
    with pytest.raises(OrderRejected, match="insufficient BTC"):
        await ex.create_order(OrderRequest("BTC/USDT", "sell", "market", 0.001))
    req = OrderRequest("BTC/USDT", "buy", "market", 0.001)
    await ex.create_order(req)
    with pytest.raises(DuplicateClientOrderId):
        await ex.create_order(req)
    with pytest.raises(OrderRejected, match="cannot be paper-traded"):
        await ex.create_order(OrderRequest("BTC/USDT:USDT", "buy", "market", 0.001))
    assert len(ex.fills) == 1  # the refused orders left no trace


async def test_end_of_data_refuses_market_orders_but_limits_may_rest(make_paper) -> None:
    series = {"BTC/USDT": candles([(100, 100, 100, 100), (100, 100, 100, 100)])}
    ex = make_paper(series, start=1)
    with pytest.raises(OrderRejected, match="end of the BTC/USDT data"):
        await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.1))
    order = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.1, 99.0))
    assert order.status == "open"
    assert await ex.advance(5) == 0


async def test_equity_and_pnl_add_up_over_a_real_replay(make_paper) -> None:
    ex = make_paper(start=1000)
    await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.1))
    last = (await ex.fetch_ticker("BTC/USDT")).last
    await ex.create_order(OrderRequest("BTC/USDT", "sell", "limit", 0.05, round(last * 1.004, 2)))
    await ex.advance(300)
    pnl = await ex.pnl()
    bal = await ex.fetch_balance()
    last = (await ex.fetch_ticker("BTC/USDT")).last
    assert pnl["equity"] == pytest.approx(bal["USDT"].total + bal["BTC"].total * last)
    assert pnl["total_pnl"] == pytest.approx(pnl["realized_pnl"] + pnl["unrealized_pnl"] - pnl["fees_paid"])


async def test_state_round_trip_restores_account_and_clock(make_paper) -> None:
    ex = make_paper(start=500)
    await ex.create_order(OrderRequest("BTC/USDT", "buy", "market", 0.02))
    last = (await ex.fetch_ticker("BTC/USDT")).last
    resting = await ex.create_order(OrderRequest("BTC/USDT", "buy", "limit", 0.01, round(last * 0.995, 2)))
    await ex.advance(3)
    state = ex.to_state()

    again = make_paper(start=0)
    again.load_state(state)
    assert again.feed.now_ms() == ex.feed.now_ms()
    assert await again.fetch_balance() == await ex.fetch_balance()
    assert (await again.fetch_order_by_client_id(resting.client_order_id)) is not None
    await ex.advance(200)
    await again.advance(200)
    assert await again.pnl() == await ex.pnl()
    assert [f.price for f in again.fills] == [f.price for f in ex.fills]


def test_slippage_formula() -> None:
    cfg = SlippageConfig(base_bps=2, impact_bps=100, max_bps=50)
    assert slippage_bps(cfg, 1.0, 100.0) == pytest.approx(3.0)
    assert slippage_bps(cfg, 100.0, 100.0) == 50  # capped
    assert slippage_bps(cfg, 1.0, 0.0) == 50  # no volume: worst case
    assert slippage_bps(cfg, 1.0, math.nan) == 50
