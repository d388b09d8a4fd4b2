"""Rule strategies against plain-Python definitions; recorded signals replayed bar for bar."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from alina.trading.backtest import BacktestInputError, Ohlcv, run_backtest
from alina.trading.market_data import iso_utc
from alina.trading.strategies import (
    STRATEGIES,
    Signal,
    SignalFileError,
    get_strategy,
    load_signals,
    targets_from_signals,
)

from .conftest import HOUR_MS, START_MS


def py_sma_cross(close: list[float], fast: int, slow: int) -> tuple[list[float], list[bool]]:
    """Signal per bar, and whether the two averages are too close to call (float noise)."""
    signal, tie = [], []
    for i in range(len(close)):
        if i + 1 < slow:
            signal.append(0.0)
            tie.append(False)
            continue
        f, s = sum(close[i + 1 - fast : i + 1]) / fast, sum(close[i + 1 - slow : i + 1]) / slow
        signal.append(1.0 if f > s else 0.0)
        tie.append(abs(f - s) <= 1e-9 * s)
    return signal, tie


def py_breakout(d: Ohlcv, lookback: int, exit_lookback: int) -> list[float]:
    state, out = 0.0, []
    for i in range(len(d)):
        if i >= lookback and d.close[i] > max(d.high[i - lookback : i]):
            state = 1.0
        if i >= exit_lookback and d.close[i] < min(d.low[i - exit_lookback : i]):
            state = 0.0
        out.append(state)
    return out


@pytest.mark.parametrize(("fast", "slow"), [(20, 50), (5, 12), (1, 2)])
def test_sma_cross_matches_plain_python(btc: Ohlcv, fast: int, slow: int) -> None:
    want, tie = py_sma_cross(btc.close.tolist(), fast, slow)
    got = STRATEGIES["sma_cross"].func(btc, fast=fast, slow=slow)
    differ = [i for i in range(len(btc)) if got[i] != want[i] and not tie[i]]
    assert differ == []


@pytest.mark.parametrize(("lookback", "exit_lookback"), [(20, 10), (5, 5), (3, 8)])
def test_breakout_matches_plain_python(btc: Ohlcv, lookback: int, exit_lookback: int) -> None:
    got = STRATEGIES["breakout"].func(btc, lookback=lookback, exit_lookback=exit_lookback)
    assert got.tolist() == py_breakout(btc, lookback, exit_lookback)


def test_targets_trade_the_next_open(walk: Ohlcv) -> None:
    s = get_strategy("sma_cross")
    signal, targets = s.func(walk, fast=3, slow=7), s.targets(walk, {"fast": 3, "slow": 7})
    assert targets[0] == 0 and targets[1:].tolist() == signal[:-1].tolist()


def test_params_are_typed_and_checked() -> None:
    s = get_strategy("sma_cross")
    assert s.params({"fast": "10"}) == {"fast": 10, "slow": 50}
    assert "moving average" in s.description
    with pytest.raises(BacktestInputError, match="no parameter 'fats'"):
        s.params({"fats": "10"})
    with pytest.raises(BacktestInputError, match="must be int"):
        s.params({"fast": "ten"})
    with pytest.raises(BacktestInputError, match="fast < slow"):
        s.targets(Ohlcv.from_rows([[i, 1, 1, 1, 1, 1] for i in range(3)]), {"fast": 9, "slow": 3})
    with pytest.raises(BacktestInputError, match="unknown strategy 'nope'; available: sma_cross, breakout"):
        get_strategy("nope")


# --------------------------------------------------------------------------- signals


def _signals_like(strategy_targets: np.ndarray, d: Ohlcv, iso: bool = False) -> list[dict]:
    """Signals a trader could have recorded that reproduce ``strategy_targets``."""
    out, prev = [], 0.0
    for j, t in enumerate(strategy_targets):
        if t != prev:
            ts = int(d.ts[j]) - 60_000  # decided a minute before the bar opened
            out.append({"ts": iso_utc(ts) if iso else ts, "signal": "buy" if t else "sell"})
            prev = t
    return out


def test_replayed_signals_reproduce_the_strategy(btc: Ohlcv, tmp_path: Path) -> None:
    targets = STRATEGIES["sma_cross"].targets(btc)
    path = tmp_path / "signals.json"
    path.write_text(json.dumps(_signals_like(targets, btc)))
    replayed, ignored = targets_from_signals(load_signals(path), btc)
    assert ignored == 0
    np.testing.assert_array_equal(replayed, targets)
    a, b = run_backtest(btc, targets), run_backtest(btc, replayed)
    assert a.report == b.report


def test_csv_signals_iso_times_sizes_and_holds(walk: Ohlcv, tmp_path: Path) -> None:
    path = tmp_path / "signals.csv"
    path.write_text(
        "time,action,size\n"
        f"{iso_utc(int(walk.ts[3]))},BUY,0.5\n"
        f"{iso_utc(int(walk.ts[5]))},hold,\n"
        f"{int(walk.ts[8]) - 1},long,\n"
        f"{int(walk.ts[12])},exit,\n"
        f"{int(walk.ts[-1]) + HOUR_MS},buy,\n"
    )
    signals = load_signals(path)
    assert signals[0] == Signal(int(walk.ts[3]), "buy", 0.5)
    targets, ignored = targets_from_signals(signals, walk)
    assert ignored == 1
    assert targets[:14].tolist() == [0, 0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1, 0, 0]
    assert (targets[14:] == 0).all()


def test_gzip_and_wrapped_json_signals(tmp_path: Path) -> None:
    path = tmp_path / "s.json.gz"
    path.write_bytes(
        gzip.compress(json.dumps({"signals": [{"timestamp": START_MS, "side": "sell"}]}).encode())
    )
    assert load_signals(path) == [Signal(START_MS, "sell", 1.0)]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[{"ts": 1, "signal": "buyy"}]', "signal 1: unknown action 'buyy'"),
        ('[{"ts": 1}]', "signal 1: needs a time"),
        ('[{"ts": 1, "signal": "buy", "size": 2}]', "size must be in (0, 1]"),
        ('[{"ts": "soon", "signal": "buy"}]', "bad time 'soon'"),
        ("[1, 2]", "expected an object"),
        ('{"rows": []}', "list of signal objects"),
        ("[]", "contains no signals"),
        ("[{", "not valid JSON"),
        ("ts,signal\n1,buy\n2,\n", "signal 2: needs a time"),
    ],
)
def test_bad_signal_files_name_file_and_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "s.txt"
    path.write_text(content)
    with pytest.raises(SignalFileError) as info:
        load_signals(path)
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)
