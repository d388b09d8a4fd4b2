"""The trading benchmark's anchor computes the same backtest as the product (figures, not time)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from alina.trading.backtest import Ohlcv

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is not an installed package
    sys.path.insert(0, str(ROOT))

from bench.trading import alina_backtest, anchor_backtest  # noqa: E402


def test_anchor_and_product_agree(btc: Ohlcv) -> None:
    a, b = alina_backtest(btc), anchor_backtest(btc.ts, btc.open, btc.close)
    for key in ("final_equity", "fees", "trades", "max_dd", "sharpe"):
        assert math.isclose(a[key], b[key], rel_tol=1e-9), key
    assert a["trades"] > 100 and a["final_equity"] == pytest.approx(9165.996956, abs=1e-6)
