"""Built-in rule strategies and signal replay: both turn candles into target exposures.

A rule strategy computes a **signal** per bar from data up to that bar's close (1 = long,
0 = flat); :meth:`Strategy.targets` shifts it one bar, so a decision taken at a close is
traded at the next open (no look-ahead). Recorded signals are replayed the same way: a
signal stamped ``T`` is traded at the open of the first bar whose open time is ``>= T``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from alina.trading.backtest import BacktestInputError, Ohlcv

__all__ = [
    "STRATEGIES",
    "Signal",
    "SignalFileError",
    "Strategy",
    "breakout",
    "buy_and_hold",
    "get_strategy",
    "load_signals",
    "rolling",
    "sma_cross",
    "targets_from_signals",
]


def rolling(values: np.ndarray, n: int, how: str = "mean") -> np.ndarray:
    """Rolling mean/max/min over the last ``n`` values including the current one; NaN before."""
    out = np.full(len(values), np.nan)
    if n <= len(values):
        windows = sliding_window_view(values, n)
        out[n - 1 :] = getattr(windows, how)(axis=1)
    return out


def sma_cross(data: Ohlcv, fast: int = 20, slow: int = 50) -> np.ndarray:
    """Long while the fast simple moving average of closes is above the slow one."""
    if not 1 <= fast < slow:
        raise BacktestInputError(f"sma_cross needs 1 <= fast < slow (got fast={fast}, slow={slow})")
    fast_ma, slow_ma = rolling(data.close, fast), rolling(data.close, slow)
    with np.errstate(invalid="ignore"):
        return (fast_ma > slow_ma).astype(np.float64)


def breakout(data: Ohlcv, lookback: int = 20, exit_lookback: int = 10) -> np.ndarray:
    """Donchian breakout: enter when the close tops the previous ``lookback`` bars' highest high,
    exit when it falls below the previous ``exit_lookback`` bars' lowest low."""
    if lookback < 1 or exit_lookback < 1:
        raise BacktestInputError(
            f"breakout needs lookback, exit_lookback >= 1 (got {lookback}, {exit_lookback})"
        )
    prev_high = np.concatenate(([np.nan], rolling(data.high, lookback, "max")[:-1]))
    prev_low = np.concatenate(([np.nan], rolling(data.low, exit_lookback, "min")[:-1]))
    with np.errstate(invalid="ignore"):
        enter, leave = data.close > prev_high, data.close < prev_low
    # With exit_lookback <= lookback both cannot hold on one bar (the exit window lies inside
    # the entry window); otherwise the exit wins, which is the conservative choice.
    event = np.where(leave, 0.0, np.where(enter, 1.0, np.nan))
    return _forward_fill(event)


def buy_and_hold(data: Ohlcv) -> np.ndarray:
    """Long from the first bar on (a reference for the other strategies)."""
    return np.ones(len(data))


def _forward_fill(values: np.ndarray, initial: float = 0.0) -> np.ndarray:
    """Replace each NaN by the last non-NaN value before it (``initial`` before any)."""
    idx = np.where(np.isnan(values), 0, np.arange(len(values)))
    np.maximum.accumulate(idx, out=idx)
    out = values[idx]
    return np.where(np.isnan(out), initial, out)


@dataclass(frozen=True)
class Strategy:
    """A named rule strategy and its parameters' defaults (ints or floats)."""

    name: str
    func: Callable[..., np.ndarray]
    defaults: Mapping[str, int | float]

    @property
    def description(self) -> str:
        """First docstring paragraph of the strategy function, on one line."""
        return " ".join((self.func.__doc__ or "").split("\n\n")[0].split())

    def params(self, overrides: Mapping[str, str] | None = None) -> dict[str, int | float]:
        """The defaults with ``overrides`` (text, e.g. from ``--param fast=10``) applied and typed."""
        out = dict(self.defaults)
        for key, text in (overrides or {}).items():
            if key not in out:
                raise BacktestInputError(
                    f"strategy {self.name!r} has no parameter {key!r}; it has {', '.join(out) or 'none'}"
                )
            kind = type(out[key])
            try:
                out[key] = kind(text)
            except ValueError:
                raise BacktestInputError(
                    f"parameter {key!r} must be {kind.__name__} (got {text!r})"
                ) from None
        return out

    def targets(self, data: Ohlcv, params: Mapping[str, int | float] | None = None) -> np.ndarray:
        """Exposure per bar: the signal of the previous bar's close (0 on the first bar)."""
        signal = self.func(data, **(params if params is not None else self.defaults))
        return np.concatenate(([0.0], signal[:-1]))


STRATEGIES: dict[str, Strategy] = {
    "sma_cross": Strategy("sma_cross", sma_cross, {"fast": 20, "slow": 50}),
    "breakout": Strategy("breakout", breakout, {"lookback": 20, "exit_lookback": 10}),
    "buy_and_hold": Strategy("buy_and_hold", buy_and_hold, {}),
}


def get_strategy(name: str) -> Strategy:
    """The built-in strategy ``name``; :class:`BacktestInputError` listing the known ones."""
    if name not in STRATEGIES:
        raise BacktestInputError(f"unknown strategy {name!r}; available: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


# --------------------------------------------------------------------------- recorded signals


class SignalFileError(BacktestInputError):
    """A signals file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Signal:
    """One recorded decision: ``buy`` (to exposure ``size``), ``sell`` (to flat) or ``hold``."""

    ts_ms: int
    action: str
    size: float = 1.0


_ACTIONS = {
    "buy": "buy",
    "long": "buy",
    "enter": "buy",
    "sell": "sell",
    "exit": "sell",
    "flat": "sell",
    "close": "sell",
    "hold": "hold",
}
_SIGNAL_TS = ("ts", "timestamp", "time", "date", "datetime")
_SIGNAL_ACTION = ("signal", "action", "side")


def load_signals(path: str | Path) -> list[Signal]:
    """Read recorded signals from JSON (.json/.json.gz) or CSV.

    JSON: a list of objects (or ``{"signals": [...]}``) with a time (``ts``: epoch ms or
    ISO-8601; also ``timestamp``/``time``/``date``), an action (``signal``/``action``/``side``:
    buy|long|enter, sell|exit|flat|close, hold) and an optional ``size`` (target exposure
    after a buy, 0 < size <= 1, default 1). CSV: a header with the same column names.

    Raises:
        SignalFileError: unreadable file, unknown layout, or a bad row (named by its number).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SignalFileError(p, f"cannot read the file ({exc})") from None
    if text.lstrip()[:1] in ("[", "{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SignalFileError(p, f"not valid JSON at line {exc.lineno}, column {exc.colno}") from None
        records = obj.get("signals") if isinstance(obj, dict) else obj
        if not isinstance(records, list):
            raise SignalFileError(p, 'JSON must be a list of signal objects or {"signals": [...]}')
    else:
        records = list(csv.DictReader(io.StringIO(text)))
    signals = []
    for i, rec in enumerate(records, start=1):
        try:
            signals.append(_signal(rec))
        except (ValueError, TypeError) as exc:
            raise SignalFileError(p, f"signal {i}: {exc}") from None
    if not signals:
        raise SignalFileError(p, "contains no signals")
    return signals


def _signal(rec: Any) -> Signal:
    if not isinstance(rec, dict):
        raise ValueError(f"expected an object with ts and signal, got {rec!r}")
    low = {str(k).strip().lower(): v for k, v in rec.items()}
    ts = next((low[k] for k in _SIGNAL_TS if low.get(k) not in (None, "")), None)
    act = next((low[k] for k in _SIGNAL_ACTION if low.get(k) not in (None, "")), None)
    if ts is None or act is None:
        raise ValueError(f"needs a time ({'/'.join(_SIGNAL_TS)}) and an action ({'/'.join(_SIGNAL_ACTION)})")
    action = _ACTIONS.get(str(act).strip().lower())
    if action is None:
        raise ValueError(f"unknown action {act!r} (expected one of {', '.join(sorted(_ACTIONS))})")
    size_raw = low.get("size")
    size = 1.0 if size_raw in (None, "") else float(size_raw)
    if not 0 < size <= 1:
        raise ValueError(f"size must be in (0, 1], got {size_raw!r}")
    return Signal(_epoch_ms(ts), action, size)


def _epoch_ms(value: Any) -> int:
    """Epoch milliseconds from a number (ms) or an ISO-8601 string (UTC when no zone)."""
    if isinstance(value, bool):
        raise ValueError(f"bad time {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"bad time {value!r} (epoch ms or ISO-8601 expected)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round(moment.timestamp() * 1000))


def targets_from_signals(signals: list[Signal], data: Ohlcv) -> tuple[np.ndarray, int]:
    """Exposure per bar from ``signals`` (stable-sorted by time), and how many fell after the data."""
    events = np.full(len(data), np.nan)
    state, ignored = 0.0, 0
    for sig in sorted(signals, key=lambda s: s.ts_ms):
        bar = int(np.searchsorted(data.ts, sig.ts_ms, side="left"))
        if bar >= len(data):
            ignored += 1
            continue
        state = sig.size if sig.action == "buy" else 0.0 if sig.action == "sell" else state
        events[bar] = state
    return _forward_fill(events), ignored
