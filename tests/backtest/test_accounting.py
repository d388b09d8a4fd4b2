"""Backtest accounting, cross-checked against a deliberately simple second implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alina.trading.backtest import BacktestInputError, BacktestResult, Ohlcv, run_backtest
from alina.trading.strategies import STRATEGIES

from .conftest import START_MS


def reference(data: Ohlcv, targets: list[float], fee: float, cash: float) -> dict:
    """All-in / all-out replay, one bar at a time, written independently of the engine."""
    start, qty, prev, fees, trades = cash, 0.0, 0.0, 0.0, 0
    equity, in_market = [], 0
    for j in range(len(data)):
        price = float(data.open[j])
        if targets[j] != prev:
            if targets[j] == 1.0:
                bought = cash / (price * (1 + fee))
                fees += bought * price * fee
                qty, cash = bought, 0.0
            else:
                fees += qty * price * fee
                cash += qty * price * (1 - fee)
                qty = 0.0
            trades += 1
            prev = targets[j]
        in_market += qty > 0
        equity.append(cash + qty * float(data.close[j]))
    peak, max_dd = -math.inf, 0.0
    for e in [start, *equity]:
        peak = max(peak, e)
        max_dd = max(max_dd, 1 - e / peak)
    return {
        "equity": equity,
        "fees": fees,
        "trades": trades,
        "exposure": in_market / len(data),
        "max_dd": max_dd,
    }


@pytest.mark.parametrize("name", ["sma_cross", "breakout", "buy_and_hold"])
@pytest.mark.parametrize("fee", [0.0, 0.001, 0.0075])
def test_engine_matches_the_reference_replay(btc: Ohlcv, name: str, fee: float) -> None:
    targets = STRATEGIES[name].targets(btc)
    result = run_backtest(btc, targets, fee_rate=fee, cash=10_000.0)
    ref = reference(btc, targets.tolist(), fee, 10_000.0)
    np.testing.assert_allclose(result.equity, ref["equity"], rtol=1e-9)
    assert result.report.fees == pytest.approx(ref["fees"], rel=1e-9, abs=1e-9)
    assert result.report.trades == ref["trades"] == len(result.fills)
    assert result.report.exposure_pct == pytest.approx(ref["exposure"] * 100)
    assert result.report.max_drawdown_pct == pytest.approx(ref["max_dd"] * 100, rel=1e-9)
    assert result.report.final_equity == pytest.approx(ref["equity"][-1], rel=1e-9)


def _identities(r: BacktestResult, start: float) -> None:
    """cash + position value = equity at every bar; fills explain every change of cash and qty."""
    np.testing.assert_allclose(r.cash + r.position_value, r.equity, rtol=0, atol=1e-9)
    assert (r.cash >= -1e-9).all() and (r.qty >= 0).all()
    assert r.report.fees == pytest.approx(sum(f.fee for f in r.fills), abs=1e-12)
    cash, qty, fill_at = start, 0.0, {f.bar: f for f in r.fills}
    for j in range(len(r.data)):
        if j in fill_at:
            f = fill_at[j]
            sign = 1 if f.side == "buy" else -1
            assert f.price == r.data.open[j]
            assert f.cash_after == pytest.approx(cash - sign * f.notional - f.fee, abs=1e-6)
            assert f.qty_after == pytest.approx(qty + sign * f.qty, rel=1e-12, abs=1e-15)
            cash, qty = f.cash_after, f.qty_after
        assert (r.cash[j], r.qty[j]) == (cash, qty)
    assert r.report.final_equity == pytest.approx(cash + qty * float(r.data.close[-1]))


@pytest.mark.parametrize("name", ["sma_cross", "breakout", "buy_and_hold"])
def test_equity_identity_on_rule_strategies(btc: Ohlcv, name: str) -> None:
    _identities(run_backtest(btc, STRATEGIES[name].targets(btc), fee_rate=0.001, cash=5_000.0), 5_000.0)


def test_equity_identity_with_fractional_targets(walk: Ohlcv) -> None:
    rng = np.random.default_rng(3)
    targets = np.repeat(rng.choice([0.0, 0.25, 0.5, 1.0], size=len(walk) // 10), 10)
    r = run_backtest(walk, targets, fee_rate=0.002, cash=1_000.0)
    _identities(r, 1_000.0)
    assert any(f.side == "sell" and f.qty_after > 0 for f in r.fills)  # partial sells happened
    pos_share = r.qty * walk.open / (r.cash + r.qty * walk.open)
    changed = np.flatnonzero(np.diff(np.concatenate(([0.0], targets))) != 0)
    # right after each rebalance the exposure equals the target (up to the fee)
    np.testing.assert_allclose(pos_share[changed], targets[changed], atol=0.003)


def test_hand_computed_round_trip() -> None:
    rows = [
        [START_MS + i * 60_000, o, o + 5, o - 5, c, 1.0]
        for i, (o, c) in enumerate([(100, 101), (100, 104), (105, 108), (110, 111)])
    ]
    data = Ohlcv.from_rows(rows)
    r = run_backtest(data, np.array([0, 1, 1, 0]), fee_rate=0.01, cash=1000.0)
    buy, sell = r.fills
    assert buy.qty == pytest.approx(1000 / 101)  # 100 x (1 + 1%) per unit
    assert buy.fee == pytest.approx(1000 - 1000 / 1.01)
    assert r.equity[1] == pytest.approx(1000 / 101 * 104)
    assert sell.price == 110 and sell.fee == pytest.approx(1000 / 101 * 110 * 0.01)
    assert r.report.final_equity == pytest.approx(1000 / 101 * 110 * 0.99)
    assert r.report.round_trips == 1 and r.report.win_rate_pct == 100.0
    assert r.report.exposure_pct == 50.0 and not r.report.open_position_at_end
    assert r.report.fees == pytest.approx(buy.fee + sell.fee)


def test_sharpe_annualisation_follows_the_timeframe(walk: Ohlcv) -> None:
    r = run_backtest(walk, STRATEGIES["buy_and_hold"].targets(walk), fee_rate=0.0)
    curve = np.concatenate(([10_000.0], r.equity))
    rets = np.diff(curve) / curve[:-1]
    expected = rets.mean() / rets.std(ddof=1) * math.sqrt(365 * 24)  # hourly bars
    assert r.report.periods_per_year == 8760
    assert r.report.sharpe == pytest.approx(expected, rel=1e-12)


def test_flat_strategy_has_no_trades_and_no_sharpe(walk: Ohlcv) -> None:
    r = run_backtest(walk, np.zeros(len(walk)))
    assert r.report.trades == 0 and r.report.fees == 0 and r.report.sharpe is None
    assert r.report.final_equity == r.report.starting_equity and r.report.max_drawdown_pct == 0


def test_same_inputs_same_report(btc: Ohlcv) -> None:
    runs = [run_backtest(btc, STRATEGIES["sma_cross"].targets(btc)).to_json() for _ in range(2)]
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("targets", "kwargs", "match"),
    [
        ([0.0] * 3, {}, "targets must be"),
        ([0, 2, 0, 0], {}, "targets must be"),
        ([0, 1, 0, 0], {"fee_rate": -0.1}, "fee"),
        ([0, 1, 0, 0], {"cash": 0}, "cash"),
    ],
)
def test_bad_engine_input(targets: list[float], kwargs: dict, match: str) -> None:
    data = Ohlcv.from_rows([[START_MS + i, 1, 1, 1, 1, 1] for i in range(4)])
    with pytest.raises(BacktestInputError, match=match):
        run_backtest(data, np.array(targets, dtype=float), **kwargs)
