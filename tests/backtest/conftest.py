"""Shared candles for the backtest tests: a seeded random walk, and the bundled BTC/USDT data."""

from __future__ import annotations

import random

import pytest

from alina.trading.backtest import Ohlcv, load_candles
from alina.trading.data import DATA_DIR

START_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z
HOUR_MS = 3_600_000


def walk_rows(n: int = 400, seed: int = 7, step_ms: int = HOUR_MS) -> list[list[float]]:
    """``n`` ccxt-style rows ``[ts_ms, open, high, low, close, volume]`` of a seeded random walk."""
    rng = random.Random(seed)
    rows, price = [], 100.0
    for i in range(n):
        o = price
        c = max(1.0, o * (1 + rng.gauss(0, 0.02)))
        h, lo = max(o, c) * (1 + rng.random() * 0.01), min(o, c) * (1 - rng.random() * 0.01)
        rows.append(
            [
                START_MS + i * step_ms,
                round(o, 4),
                round(h, 4),
                round(lo, 4),
                round(c, 4),
                round(rng.random() * 1000, 3),
            ]
        )
        price = c
    return rows


@pytest.fixture(scope="session")
def walk() -> Ohlcv:
    """400 hourly candles of a seeded random walk."""
    return Ohlcv.from_rows(walk_rows(), "walk")


@pytest.fixture(scope="session")
def btc() -> Ohlcv:
    """The bundled BTC/USDT 5m candles (10999 rows)."""
    return load_candles(DATA_DIR / "BTC_USDT-5m.json.gz")
