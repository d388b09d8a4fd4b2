"""The risk guard, rule by rule, with the reason an agent reads."""

from __future__ import annotations

import pytest

from alina.trading.config import RiskConfig
from alina.trading.errors import RiskRejection
from alina.trading.orders import AccountView, Order, OrderRequest
from alina.trading.risk import RiskGuard, order_value, symbol_exposure, total_exposure

LIMITS = RiskConfig(
    max_order_notional=1000,
    max_position_notional=2000,
    max_total_exposure=3000,
    max_open_orders=2,
    daily_loss_limit=100,
    price_band_pct=5,
)


def view(positions=None, orders=(), equity=10_000.0, day_start=10_000.0) -> AccountView:
    return AccountView(
        {"BTC/USDT": 20_000.0, "ETH/USDT": 1_500.0}, dict(positions or {}), list(orders), equity, day_start
    )


def resting(symbol: str, side: str, amount: float, price: float) -> Order:
    return Order("o", "c", symbol, side, "limit", amount, price, "open", 0)  # type: ignore[arg-type]


def rule_of(req: OrderRequest, v: AccountView, guard: RiskGuard | None = None) -> str | None:
    try:
        (guard or RiskGuard(LIMITS)).check(req, v)
    except RiskRejection as exc:
        assert exc.reason and str(exc) == exc.reason
        return exc.rule
    return None


def test_accepts_an_order_within_every_limit() -> None:
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.04), view()) is None


def test_max_order_notional_uses_the_higher_of_last_and_limit() -> None:
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.051), view()) == "max_order_notional"
    req = OrderRequest("BTC/USDT", "sell", "limit", 0.049, 20_500.0)
    assert order_value(req, 20_000.0) == pytest.approx(0.049 * 20_500)
    assert rule_of(req, view()) == "max_order_notional"


def test_price_band() -> None:
    assert rule_of(OrderRequest("BTC/USDT", "buy", "limit", 0.01, 18_900.0), view()) == "price_band"
    assert rule_of(OrderRequest("BTC/USDT", "buy", "limit", 0.01, 19_100.0), view()) is None
    with pytest.raises(RiskRejection, match=r"5\.50% from the last price 20000; the band is ±5%"):
        RiskGuard(LIMITS).check(OrderRequest("BTC/USDT", "sell", "limit", 0.01, 21_100.0), view())


def test_position_counts_holdings_and_open_buys() -> None:
    v = view({"BTC/USDT": 0.05}, [resting("BTC/USDT", "buy", 0.03, 19_500.0)])
    assert symbol_exposure(v, "BTC/USDT") == pytest.approx(0.05 * 20_000 + 0.03 * 20_000)  # max(last, limit)
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.021), v) == "max_position_notional"
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.019), v) is None
    assert rule_of(OrderRequest("BTC/USDT", "sell", "market", 0.05), v) is None  # sells reduce risk


def test_total_exposure_across_symbols() -> None:
    v = view({"BTC/USDT": 0.09, "ETH/USDT": 0.5})
    assert total_exposure(v) == pytest.approx(1800 + 750)
    assert rule_of(OrderRequest("ETH/USDT", "buy", "market", 0.4), v) == "max_total_exposure"
    assert rule_of(OrderRequest("ETH/USDT", "buy", "market", 0.2), v) is None


def test_max_open_orders_counts_only_orders_that_can_rest() -> None:
    v = view(orders=[resting("BTC/USDT", "sell", 0.001, 21_000.0)] * 2)
    assert rule_of(OrderRequest("BTC/USDT", "buy", "limit", 0.01, 19_900.0), v) == "max_open_orders"
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.01), v) is None


def test_daily_loss_limit_blocks_buys_only() -> None:
    v = view({"BTC/USDT": 0.01}, equity=9_899.0, day_start=10_000.0)
    with pytest.raises(RiskRejection, match="daily loss 101.00 USDT reached the limit 100.00"):
        RiskGuard(LIMITS).check(OrderRequest("BTC/USDT", "buy", "market", 0.001), v)
    assert rule_of(OrderRequest("BTC/USDT", "sell", "market", 0.01), v) is None


def test_kill_switch_from_config_and_at_run_time() -> None:
    guard = RiskGuard(LIMITS)
    guard.engage("monitor alert: exchange latency")
    with pytest.raises(RiskRejection, match="kill switch engaged: monitor alert") as info:
        guard.check(OrderRequest("BTC/USDT", "sell", "market", 0.001), view({"BTC/USDT": 1}))
    assert info.value.rule == "kill_switch"
    guard.release()
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.001), view(), guard) is None
    configured = RiskGuard(LIMITS.model_copy(update={"kill_switch": True}))
    assert rule_of(OrderRequest("BTC/USDT", "buy", "market", 0.001), view(), configured) == "kill_switch"


def test_no_price_means_no_order() -> None:
    assert rule_of(OrderRequest("XRP/USDT", "buy", "market", 1), view()) == "no_price"
