"""Backtest a long-only spot strategy on historical candles: fills, equity, and a report.

Conventions (the same for rule strategies and replayed signals):

* A strategy gives, for every bar ``j``, the **target exposure** held during that bar: the
  fraction of equity in the asset, 0..1, decided from data up to the close of bar ``j-1``.
* When the target changes, the position is rebalanced at bar ``j``'s **open** price; the fee
  (``fee_rate`` x notional) is paid in the quote currency. No slippage, no leverage, no shorts.
* Equity is marked at every bar's close: ``equity = cash + qty * close``. A position still
  open at the end is valued at the last close (no exit fee charged).
* Sharpe = mean / sample std of per-bar equity returns x sqrt(bars per year), risk-free 0,
  bars per year = 365 days / the data's timeframe (crypto trades 24/7): 105,120 for 5m
  candles, 8,760 for 1h. The timeframe is the median spacing of the candle timestamps.

Same inputs, same outputs: there is no randomness and no wall-clock input.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from alina.trading.market_data import iso_utc, parse_ohlcv

__all__ = [
    "BacktestInputError",
    "BacktestResult",
    "DataFileError",
    "Fill",
    "Ohlcv",
    "Report",
    "load_candles",
    "run_backtest",
    "timeframe_label",
]

YEAR_MS = 365 * 86_400_000
_TS_COLUMNS = ("ts", "timestamp", "date", "datetime", "time")
_PRICE_COLUMNS = ("open", "high", "low", "close")


class BacktestInputError(ValueError):
    """Bad backtest input (data file, signals file, strategy or parameter): the operator must fix it."""


class DataFileError(BacktestInputError):
    """A candle file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Ohlcv:
    """Candles as numpy arrays, oldest first; ``ts`` is the open time in epoch ms."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def timeframe_ms(self) -> int:
        """Median spacing of the timestamps (the candle timeframe)."""
        return int(np.median(np.diff(self.ts))) if len(self.ts) > 1 else 0

    @classmethod
    def from_rows(cls, rows: Any, source: str = "") -> Ohlcv:
        """From ``[ts_ms, open, high, low, close, volume]`` rows (sorted, duplicates: last wins)."""
        candles = parse_ohlcv(rows)
        arr = np.array([c[1:] for c in candles], dtype=np.float64).reshape(-1, 5)
        ts = np.array([c.ts_ms for c in candles], dtype=np.int64)
        return cls(ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], source)


def timeframe_label(ms: int) -> str:
    """``300000 -> "5m"``, ``3600000 -> "1h"``, ``86400000 -> "1d"``; seconds otherwise."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def load_candles(path: str | Path) -> Ohlcv:
    """Load candles from a feather, JSON (.json/.json.gz) or CSV file, recognised by content.

    * feather: Arrow IPC with a ``date`` (timestamp) or ``ts`` (epoch ms) column and
      open/high/low/close/volume (freqtrade's layout);
    * JSON: ccxt ``fetch_ohlcv`` rows ``[[ts_ms, o, h, l, c, v], ...]`` or pandas column form;
    * CSV: a header naming a time column (ts/timestamp/date: epoch ms or ISO-8601) and
      open, high, low, close, volume (optional); gzip'd CSV is accepted too.

    Raises:
        DataFileError: the file is missing, unreadable, of an unknown layout, or its candles
            are invalid (fewer than 2, non-positive or non-finite prices, low above high).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataFileError(p, f"cannot read the file ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataFileError(p, f"corrupt gzip data ({exc})") from None
    try:
        if raw[:6] == b"ARROW1":
            rows = _feather_rows(p)
        elif raw.lstrip()[:1] in (b"[", b"{"):
            rows = _json_rows(raw)
        else:
            rows = _csv_rows(raw)
        data = Ohlcv.from_rows(rows, str(p))
    except DataFileError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise DataFileError(p, str(exc) or type(exc).__name__) from None
    _validate(p, data)
    return data


def _feather_rows(path: Path) -> list[Any]:
    import pyarrow as pa
    import pyarrow.feather as feather

    try:
        table = feather.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable feather file ({exc})") from None
    names = {n.lower(): n for n in table.column_names}
    ts_name = next((names[c] for c in _TS_COLUMNS if c in names), None)
    missing = [c for c in _PRICE_COLUMNS if c not in names]
    if ts_name is None or missing:
        raise ValueError(f"needs a date/ts column and {', '.join(_PRICE_COLUMNS)}; has {table.column_names}")
    ts_col = table.column(ts_name)
    if pa.types.is_timestamp(ts_col.type):
        ts_col = ts_col.cast(pa.timestamp("ms", tz=ts_col.type.tz)).cast(pa.int64())
    cols = [ts_col.to_pylist()] + [table.column(names[c]).to_pylist() for c in _PRICE_COLUMNS]
    volume = table.column(names["volume"]).to_pylist() if "volume" in names else [None] * table.num_rows
    return [list(r) for r in zip(*cols, volume, strict=True)]


def _json_rows(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def _csv_rows(raw: bytes) -> list[Any]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("not a feather, JSON or CSV file (binary content)") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    ts_col = next((c for c in _TS_COLUMNS if c in header), None)
    missing = [c for c in _PRICE_COLUMNS if c not in header]
    if ts_col is None or missing:
        raise ValueError(
            f"CSV header must name a time column ({'/'.join(_TS_COLUMNS)}) and {', '.join(_PRICE_COLUMNS)}"
            f", volume; got {header}"
        )
    idx = [header.index(c) for c in (ts_col, *_PRICE_COLUMNS)]
    vol = header.index("volume") if "volume" in header else None
    rows = []
    for line_no, rec in enumerate(reader, start=2):
        if not rec or all(not x.strip() for x in rec):
            continue
        try:
            ts = rec[idx[0]].strip()
            row: list[Any] = [int(ts) if ts.lstrip("-").isdigit() else ts]
            row += [float(rec[i]) for i in idx[1:]] + [
                float(rec[vol]) if vol is not None and rec[vol] else None
            ]
            rows.append(row)
        except (ValueError, IndexError) as exc:
            raise ValueError(f"line {line_no}: {exc}") from None
    return rows


def _validate(path: Path, d: Ohlcv) -> None:
    if len(d) < 2:
        raise DataFileError(path, f"needs at least 2 candles, found {len(d)}")
    prices = np.stack([d.open, d.high, d.low, d.close])
    bad = ~np.isfinite(prices).all(axis=0) | (prices <= 0).any(axis=0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFileError(path, f"candle at {iso_utc(int(d.ts[i]))} has a non-positive or missing price")
    inverted = d.low > d.high
    if inverted.any():
        i = int(np.argmax(inverted))
        raise DataFileError(
            path, f"candle at {iso_utc(int(d.ts[i]))} has low {d.low[i]} above high {d.high[i]}"
        )


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Fill:
    """One executed trade at a bar's open."""

    bar: int
    ts_ms: int
    side: Literal["buy", "sell"]
    price: float
    qty: float
    notional: float
    """qty x price, before the fee."""
    fee: float
    cash_after: float
    qty_after: float


@dataclass(frozen=True)
class Report:
    """The headline figures of a backtest (percentages are in %, money in the quote currency)."""

    starting_equity: float
    final_equity: float
    return_pct: float
    buy_hold_return_pct: float
    max_drawdown_pct: float
    sharpe: float | None
    periods_per_year: float
    trades: int
    round_trips: int
    win_rate_pct: float | None
    fees: float
    exposure_pct: float
    """Share of bars during which a position was held."""
    open_position_at_end: bool


@dataclass
class BacktestResult:
    """Per-bar state (cash, qty and equity at each close), the fills and the report."""

    data: Ohlcv
    targets: np.ndarray
    cash: np.ndarray
    qty: np.ndarray
    equity: np.ndarray
    fills: list[Fill]
    report: Report
    fee_rate: float
    symbol: str = ""
    strategy: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def position_value(self) -> np.ndarray:
        """Value of the held asset at each close."""
        return self.qty * self.data.close

    def to_json(self) -> dict[str, Any]:
        """The report as one JSON-ready object (no per-bar arrays)."""
        d = self.data
        rep = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.report.__dict__.items()}
        return {
            "symbol": self.symbol,
            "strategy": self.strategy,
            "params": self.params,
            "data": {
                "file": d.source,
                "candles": len(d),
                "first": iso_utc(int(d.ts[0])),
                "last": iso_utc(int(d.ts[-1])),
                "timeframe": timeframe_label(d.timeframe_ms),
            },
            "fee_rate": self.fee_rate,
            **rep,
            "sharpe_annualisation": "per-bar returns x sqrt(periods_per_year); 365-day year, risk-free 0",
        }


def run_backtest(
    data: Ohlcv,
    targets: np.ndarray,
    *,
    fee_rate: float = 0.001,
    cash: float = 10_000.0,
    symbol: str = "",
    strategy: str = "",
    params: dict[str, Any] | None = None,
) -> BacktestResult:
    """Trade ``targets`` (exposure 0..1 per bar, see the module doc) on ``data``.

    Raises:
        BacktestInputError: wrong target length or values, negative fee, non-positive cash.
    """
    n = len(data)
    tgt = np.asarray(targets, dtype=np.float64)
    if tgt.shape != (n,) or not np.isfinite(tgt).all() or (tgt < 0).any() or (tgt > 1).any():
        raise BacktestInputError(f"targets must be {n} values in [0, 1]")
    if not (math.isfinite(fee_rate) and 0 <= fee_rate < 1):
        raise BacktestInputError(f"fee must be in [0, 1), got {fee_rate}")
    if not (math.isfinite(cash) and cash > 0):
        raise BacktestInputError(f"cash must be positive, got {cash}")
    cash_arr, qty_arr = np.empty(n), np.empty(n)
    fills: list[Fill] = []
    c, q = float(cash), 0.0
    changes = np.flatnonzero(np.diff(np.concatenate(([0.0], tgt))) != 0)
    bounds = [*changes.tolist(), n]
    cash_arr[: bounds[0]], qty_arr[: bounds[0]] = c, q
    for j, end in zip(bounds[:-1], bounds[1:], strict=True):
        fill = _rebalance(j, int(data.ts[j]), float(data.open[j]), float(tgt[j]), c, q, fee_rate)
        if fill is not None:
            fills.append(fill)
            c, q = fill.cash_after, fill.qty_after
        cash_arr[j:end], qty_arr[j:end] = c, q
    equity = cash_arr + qty_arr * data.close
    report = _report(data, cash, equity, qty_arr, fills)
    return BacktestResult(
        data, tgt, cash_arr, qty_arr, equity, fills, report, fee_rate, symbol, strategy, dict(params or {})
    )


def _rebalance(
    bar: int, ts: int, price: float, target: float, cash: float, qty: float, fee: float
) -> Fill | None:
    """Trade at ``price`` so that ``target`` of the equity is in the asset."""
    equity = cash + qty * price
    delta_value = target * equity - qty * price
    if target >= 1.0 and cash > 0:
        spend = cash  # all in: the fee comes out of the cash too
    elif delta_value > 0:
        spend = min(cash, delta_value)
    elif target <= 0.0 and qty > 0:
        notional = qty * price
        return Fill(bar, ts, "sell", price, qty, notional, notional * fee, cash + notional * (1 - fee), 0.0)
    elif delta_value < 0:
        sell_qty = min(qty, -delta_value / price)
        notional = sell_qty * price
        return Fill(
            bar,
            ts,
            "sell",
            price,
            sell_qty,
            notional,
            notional * fee,
            cash + notional * (1 - fee),
            qty - sell_qty,
        )
    else:
        return None
    if spend <= equity * 1e-12:
        return None
    buy_qty = spend / (price * (1 + fee))
    notional = buy_qty * price
    return Fill(bar, ts, "buy", price, buy_qty, notional, spend - notional, cash - spend, qty + buy_qty)


def _report(data: Ohlcv, start: float, equity: np.ndarray, qty: np.ndarray, fills: list[Fill]) -> Report:
    curve = np.concatenate(([start], equity))
    peak = np.maximum.accumulate(curve)
    returns = np.diff(curve) / curve[:-1]
    per_year = YEAR_MS / data.timeframe_ms if data.timeframe_ms > 0 else math.nan
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    sharpe = (
        float(np.mean(returns)) / std * math.sqrt(per_year) if std > 0 and math.isfinite(per_year) else None
    )
    trips = _round_trip_pnl(start, fills)
    return Report(
        starting_equity=float(start),
        final_equity=float(equity[-1]),
        return_pct=(float(equity[-1]) / start - 1) * 100,
        buy_hold_return_pct=(float(data.close[-1]) / float(data.open[0]) - 1) * 100,
        max_drawdown_pct=float(np.max(1 - curve / peak)) * 100,
        sharpe=sharpe,
        periods_per_year=per_year,
        trades=len(fills),
        round_trips=len(trips),
        win_rate_pct=(sum(p > 0 for p in trips) / len(trips) * 100) if trips else None,
        fees=float(sum(f.fee for f in fills)),
        exposure_pct=float(np.mean(qty > 0)) * 100,
        open_position_at_end=bool(qty[-1] > 0),
    )


def _round_trip_pnl(start: float, fills: list[Fill]) -> list[float]:
    """P&L of each flat -> flat cycle: cash after the closing sell minus cash before the entry."""
    pnl: list[float] = []
    cash, entry = start, None
    for f in fills:
        if f.side == "buy" and f.qty_after == f.qty:  # opened from flat: equity was all cash
            entry = cash
        elif f.side == "sell" and f.qty_after == 0.0 and entry is not None:
            pnl.append(f.cash_after - entry)
            entry = None
        cash = f.cash_after
    return pnl
