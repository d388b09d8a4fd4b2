"""Trading desk: backtest candles/s and paper-exchange orders/s, each against a raw anchor.

* backtest: ``alina.trading`` (sma_cross targets + ``run_backtest`` with its report) against a
  plain anchor doing the same arithmetic on the same candles: cumulative-sum moving averages in
  numpy, then a Python loop over the bars (all in / all out at the next open, fee on both legs,
  equity at every close), then drawdown and Sharpe in numpy. Both must end on the same equity.
* loading: ``load_candles`` (parse + validation) against ``json.loads`` of the gunzipped file
  into a numpy array.
* paper exchange (only if ``alina.trading.paper`` is importable): market orders placed through
  ``PaperExchange.create_order`` on a replay of the same candles, against the raw ccxt work every
  order needs, ``amount_to_precision`` + ``price_to_precision`` on a ccxt binance instance
  loaded with the same markets file.

Sides alternate order every repetition (AB, BA, ...) so drift hits both.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._harness import Goal, Result, median, progress, ratio, stopwatch

FEE = 0.001
CASH = 10_000.0
FAST, SLOW = 20, 50
TARGET_BACKTEST_RATIO = 1.0
TARGET_PAPER_RATIO = 0.1


# --------------------------------------------------------------------------- backtest


def anchor_backtest(ts: np.ndarray, open_: np.ndarray, close: np.ndarray) -> dict[str, float]:
    """The same sma_cross backtest written the plain way (see the module docstring)."""
    csum = np.concatenate(([0.0], np.cumsum(close)))
    n = len(close)
    fast, slow = np.full(n, np.nan), np.full(n, np.nan)
    fast[FAST - 1 :] = (csum[FAST:] - csum[:-FAST]) / FAST
    slow[SLOW - 1 :] = (csum[SLOW:] - csum[:-SLOW]) / SLOW
    with np.errstate(invalid="ignore"):
        signal = (fast > slow).tolist()
    cash, qty, fees, trades, held = CASH, 0.0, 0.0, 0, False
    equity = [0.0] * n
    opens, closes = open_.tolist(), close.tolist()
    for j in range(n):
        want = j > 0 and signal[j - 1]
        if want != held:
            price = opens[j]
            if want:
                qty = cash / (price * (1 + FEE))
                fees += cash - qty * price
                cash = 0.0
            else:
                fees += qty * price * FEE
                cash += qty * price * (1 - FEE)
                qty = 0.0
            trades += 1
            held = want
        equity[j] = cash + qty * closes[j]
    curve = np.array([CASH, *equity])
    drawdown = float(np.max(1 - curve / np.maximum.accumulate(curve)))
    rets = np.diff(curve) / curve[:-1]
    per_year = 365 * 86_400_000 / float(np.median(np.diff(ts)))
    sharpe = float(rets.mean() / rets.std(ddof=1) * math.sqrt(per_year))
    return {"final_equity": equity[-1], "fees": fees, "trades": trades, "max_dd": drawdown, "sharpe": sharpe}


def alina_backtest(data: Any) -> dict[str, float]:
    """The product path: strategy targets, the engine, the report."""
    from alina.trading.backtest import run_backtest
    from alina.trading.strategies import STRATEGIES

    targets = STRATEGIES["sma_cross"].targets(data, {"fast": FAST, "slow": SLOW})
    r = run_backtest(data, targets, fee_rate=FEE, cash=CASH).report
    return {
        "final_equity": r.final_equity,
        "fees": r.fees,
        "trades": r.trades,
        "max_dd": r.max_drawdown_pct / 100,
        "sharpe": r.sharpe or math.nan,
    }


def _rate(fn: Callable[[], Any], units: int, inner: int) -> tuple[float, Any]:
    out = fn()  # warm-up, and the figures to cross-check
    with stopwatch() as sw:
        for _ in range(inner):
            fn()
    return units * inner / sw.elapsed, out


def _measure_backtest(reps: int, quick: bool) -> dict[str, Any]:
    from alina.trading.backtest import load_candles
    from alina.trading.data import DATA_DIR

    path = DATA_DIR / "BTC_USDT-5m.json.gz"
    data = load_candles(path)
    n, inner = len(data), (5 if quick else 20)

    def raw_load() -> np.ndarray:
        return np.array(json.loads(gzip.decompress(path.read_bytes())), dtype=np.float64)

    sides: dict[str, Callable[[], Any]] = {
        "alina": lambda: alina_backtest(data),
        "anchor": lambda: anchor_backtest(data.ts, data.open, data.close),
        "alina_load": lambda: load_candles(path),
        "anchor_load": raw_load,
    }
    rows = []
    for rep in range(reps):
        row: dict[str, Any] = {"rep": rep}
        for pair in (("alina", "anchor"), ("alina_load", "anchor_load")):
            for side in pair if rep % 2 == 0 else pair[::-1]:
                row[side], out = _rate(sides[side], n, inner if "load" not in side else max(2, inner // 5))
                if side in ("alina", "anchor"):
                    row[f"{side}_figures"] = out
        rows.append(row)
        progress(
            f"backtest rep {rep + 1}/{reps}: alina {row['alina']:,.0f} candles/s, anchor "
            f"{row['anchor']:,.0f}; load {row['alina_load']:,.0f} vs {row['anchor_load']:,.0f}"
        )
    a, b = rows[0]["alina_figures"], rows[0]["anchor_figures"]
    same = all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in ("final_equity", "fees", "trades", "max_dd"))
    return {"candles": n, "inner": inner, "rows": rows, "same_results": same, "alina": a, "anchor": b}


# --------------------------------------------------------------------------- paper exchange


def _measure_paper(reps: int, quick: bool) -> dict[str, Any]:
    """Orders/s of the paper exchange vs raw ccxt rounding; ``{"error": ...}`` if unavailable."""
    try:
        import ccxt

        from alina.trading.config import resolve_markets_file
        from alina.trading.feeds import ReplayFeed
        from alina.trading.market_data import MarketData
        from alina.trading.markets import MarketRules
        from alina.trading.orders import OrderRequest
        from alina.trading.paper import PaperExchange
    except (ImportError, AttributeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    markets_file = resolve_markets_file("binance_markets_subset_ticksize.json")
    candles = MarketData().candles("BTC/USDT")
    rules = MarketRules.from_file("binance", markets_file)
    raw = ccxt.binance()
    raw.set_markets(json.loads(markets_file.read_text(encoding="utf-8")))
    n_orders = 200 if quick else 1000

    async def paper_orders() -> float:
        ex = PaperExchange(
            rules,
            ReplayFeed({"BTC/USDT": candles}, start_ts_ms=candles[100].ts_ms),
            "USDT",
            {"USDT": 1e9, "BTC": 1e3},
        )
        with stopwatch() as sw:
            for i in range(n_orders):
                side = "buy" if i % 2 == 0 else "sell"
                await ex.create_order(OrderRequest("BTC/USDT", side, "market", 0.0123456))
        assert len(ex.fills) == n_orders
        return n_orders / sw.elapsed

    def raw_rounding() -> float:
        price = candles[101].open
        with stopwatch() as sw:
            for _ in range(n_orders):
                float(raw.amount_to_precision("BTC/USDT", 0.0123456))
                float(raw.price_to_precision("BTC/USDT", price * 1.0002))
        return n_orders / sw.elapsed

    rows = []
    asyncio.run(paper_orders())  # warm-up
    raw_rounding()
    for rep in range(reps):
        row: dict[str, Any] = {"rep": rep}
        for side in ("paper", "raw") if rep % 2 == 0 else ("raw", "paper"):
            row[side] = asyncio.run(paper_orders()) if side == "paper" else raw_rounding()
        rows.append(row)
        progress(
            f"paper rep {rep + 1}/{reps}: paper {row['paper']:,.0f} orders/s, raw ccxt rounding "
            f"{row['raw']:,.0f}/s"
        )
    return {"orders_per_rep": n_orders, "rows": rows}


# --------------------------------------------------------------------------- result


def run(reps: int, quick: bool) -> Result:
    bt = _measure_backtest(reps, quick)
    try:
        paper = _measure_paper(reps, quick)
    except Exception as exc:  # the paper exchange is still being written; report, don't crash
        paper = {"error": f"{type(exc).__name__}: {exc}"}
    rows_bt = bt["rows"]
    alina, anchor = median([r["alina"] for r in rows_bt]), median([r["anchor"] for r in rows_bt])
    load, load_anchor = (
        median([r["alina_load"] for r in rows_bt]),
        median([r["anchor_load"] for r in rows_bt]),
    )
    table = [
        [
            "backtest candles/s (sma_cross, engine + report)",
            alina,
            anchor,
            ratio(alina, anchor),
            median([ratio(r["alina"], r["anchor"]) for r in rows_bt]),
        ],
        [
            "candle file load candles/s (json.gz)",
            load,
            load_anchor,
            ratio(load, load_anchor),
            median([ratio(r["alina_load"], r["anchor_load"]) for r in rows_bt]),
        ],
    ]
    goals = [Goal("backtest_vs_anchor_ratio", ratio(alina, anchor), TARGET_BACKTEST_RATIO)]
    notes = [
        f"backtest and anchor end on the same equity, fees, trade count and drawdown: {bt['same_results']} "
        f"(final equity {bt['alina']['final_equity']:.6f} vs {bt['anchor']['final_equity']:.6f}).",
        f"{bt['candles']} BTC/USDT 5m candles, {bt['inner']} runs per repetition and side; the anchor "
        "is a plain numpy + Python loop; ratio above 1 = alina faster.",
    ]
    if "error" in paper:
        table.append(["paper orders/s", math.nan, math.nan, math.nan, math.nan])
        notes.append(f"paper exchange not measured: {paper['error']}")
    else:
        pr = paper["rows"]
        p, raw = median([r["paper"] for r in pr]), median([r["raw"] for r in pr])
        table.append(
            [
                "paper market orders/s (vs raw ccxt amount+price rounding)",
                p,
                raw,
                ratio(p, raw),
                median([ratio(r["paper"], r["raw"]) for r in pr]),
            ]
        )
        goals.append(Goal("paper_vs_raw_rounding_ratio", ratio(p, raw), TARGET_PAPER_RATIO))
        notes.append(
            f"paper: {paper['orders_per_rep']} market orders per repetition (alternating buy/sell 0.0123456 "
            "BTC, each rounded, limit-checked, slipped, filled, fee-charged); anchor: the two ccxt rounding "
            "calls alone, the floor any order path pays. The goal asks the whole paper path to cost at "
            f"most {1 / TARGET_PAPER_RATIO:.0f}x that floor."
        )
    return Result(
        name="trading",
        title="Trading desk: backtest and paper exchange vs raw anchors",
        headers=["figure", "alina", "anchor", "ratio", "paired ratio"],
        rows=table,
        goals=goals,
        params={"reps": reps, "quick": quick, "fee": FEE, "cash": CASH, "fast": FAST, "slow": SLOW},
        notes=notes,
        raw={"backtest": bt, "paper": paper},
    )
