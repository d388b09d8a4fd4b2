"""Tests for alina.trading.market_data and the bundled BTC/USDT data."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
import re
from pathlib import Path

import pytest

from alina.trading.data import DATA_DIR
from alina.trading.market_data import (
    Candle,
    MarketData,
    UnknownSymbolError,
    UnsupportedTimeframeError,
    available_symbols,
    classify_trend,
    format_price,
    load_ohlcv,
    normalize_symbol,
    parse_ohlcv,
    summarize,
)

PACKAGED = DATA_DIR / "BTC_USDT-5m.json.gz"
FIRST_TS = 1672677900000  # 2023-01-02 16:45 UTC
LAST_TS = 1675977300000  # 2023-02-09 21:15 UTC
SHARED_SRC = Path(__file__).resolve().parents[3] / "shared/data/market/freqtrade/orderflow/candles.json"


def raw_rows() -> list[list]:
    """The packaged rows read with nothing but gzip + json (independent of the loader)."""
    with gzip.open(PACKAGED, "rt") as fh:
        return json.load(fh)


def write_rows(path: Path, rows: list[list]) -> Path:
    data = json.dumps(rows).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def to_columns(rows: list[list]) -> dict:
    cols = ("date", "open", "high", "low", "close", "volume")
    return {c: {str(i): r[j] for i, r in enumerate(rows)} for j, c in enumerate(cols)}


def synthetic(closes: list[float], start: int = FIRST_TS) -> list[list]:
    rows, prev = [], closes[0]
    for i, c in enumerate(closes):
        rows.append([start + i * 300_000, prev, max(prev, c) + 1, min(prev, c) - 1, c, 10.0])
        prev = c
    return rows


def md_for(tmp_path: Path, rows: list[list], name: str = "ETH_USDT-5m.json") -> MarketData:
    write_rows(tmp_path / name, rows)
    return MarketData(available_symbols(tmp_path))


# --------------------------------------------------------------------------- packaged data


def test_packaged_file_shape_and_range():
    rows = raw_rows()
    assert len(rows) == 10999
    assert all(len(r) == 6 for r in rows)
    assert rows[0][0] == FIRST_TS and rows[-1][0] == LAST_TS
    assert all(b[0] - a[0] == 300_000 for a, b in zip(rows, rows[1:], strict=False))
    assert all(r[3] <= min(r[1], r[4]) <= max(r[1], r[4]) <= r[2] for r in rows)


def test_provenance_lists_the_real_checksums():
    text = (DATA_DIR / "PROVENANCE.md").read_text()
    for needle in (
        "freqtrade/freqtrade",
        "c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb",
        "tests/testdata/orderflow/candles.json",
        "GPL-3.0",
        "_convert.py",
    ):
        assert needle in text
    gz = PACKAGED.read_bytes()
    assert hashlib.sha256(gz).hexdigest() in text
    assert hashlib.sha256(gzip.decompress(gz)).hexdigest() in text
    for name in ("LICENSE.GPL-3.0.txt", "binance_markets_subset_ticksize.json", "LICENSE.ccxt-MIT.txt"):
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() in text
    assert "GNU GENERAL PUBLIC LICENSE" in (DATA_DIR / "LICENSE.GPL-3.0.txt").read_text()
    markets = json.loads((DATA_DIR / "binance_markets_subset_ticksize.json").read_text())
    assert "BTC/USDT" in markets and markets["BTC/USDT"]["symbol"] == "BTC/USDT"


@pytest.mark.skipif(not SHARED_SRC.exists(), reason="shared market-data snapshot not present")
def test_packaged_matches_shared_source_exactly():
    cols = json.loads(SHARED_SRC.read_text())
    keys = sorted(cols["date"], key=int)
    expected = [[cols[c][k] for c in ("date", "open", "high", "low", "close", "volume")] for k in keys]
    assert raw_rows() == expected


def test_converter_is_reproducible(tmp_path):
    from alina.trading.data import _convert

    rows = synthetic([100.0, 101.0, 102.5])
    conv = _convert.columns_to_rows(to_columns(rows))
    assert conv == rows
    payload1, gz1 = _convert.encode_rows(conv)
    payload2, gz2 = _convert.encode_rows(conv)
    assert gz1 == gz2 and json.loads(gzip.decompress(gz1)) == rows
    bad = to_columns(rows)
    bad["date"]["2"] += 1  # breaks the 5m spacing
    with pytest.raises(ValueError):
        _convert.columns_to_rows(bad)


# --------------------------------------------------------------------------- loading


def test_load_packaged_returns_candles():
    candles = load_ohlcv(PACKAGED)
    rows = raw_rows()
    assert len(candles) == len(rows)
    assert isinstance(candles[0], Candle)
    assert candles[0] == Candle(*rows[0]) and candles[-1] == Candle(*rows[-1])
    assert isinstance(candles[0].ts_ms, int)


@pytest.mark.parametrize("name", ["x.json", "x.json.gz"])
def test_load_j_ohlcv_plain_and_gzip(tmp_path, name):
    rows = raw_rows()[:50]
    candles = load_ohlcv(write_rows(tmp_path / name, rows))
    assert [list(c) for c in candles] == rows


def test_load_column_oriented_with_shuffled_keys(tmp_path):
    rows = raw_rows()[100:160]
    cols = to_columns(rows)
    keys = list(cols["date"])
    random.Random(1).shuffle(keys)
    shuffled = {c: {k: cols[c][k] for k in keys} for c in cols}
    p = tmp_path / "cols.json"
    p.write_text(json.dumps(shuffled))
    assert [list(c) for c in load_ohlcv(p)] == rows


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    rows = raw_rows()[:5]
    p = tmp_path / "data.json"
    p.write_bytes(gzip.compress(json.dumps(rows).encode()))
    assert [list(c) for c in load_ohlcv(p)] == rows


def test_parse_rejects_unknown_structures():
    with pytest.raises(ValueError):
        parse_ohlcv({"foo": 1})
    with pytest.raises(ValueError):
        parse_ohlcv([[1, 2, 3]])


def test_available_symbols_maps_packaged_file():
    syms = available_symbols()
    assert syms == {"BTC/USDT": PACKAGED}


# --------------------------------------------------------------------------- MarketData


def test_last_price_is_last_close():
    md = MarketData()
    assert md.last_price("BTC/USDT") == (21925.7, LAST_TS)
    assert md.candles("btc") is md.candles("BTC/USDT")  # cached


def test_summary_24h_matches_independent_computation():
    s = MarketData().summary("BTC/USDT", 24)
    rows = raw_rows()[-288:]
    closes = [r[4] for r in rows]
    assert s.n_candles == 288
    assert s.first_ts_ms == rows[0][0] == LAST_TS - 287 * 300_000
    assert s.first_iso == "2023-02-08T21:20:00Z" and s.last_iso == "2023-02-09T21:15:00Z"
    assert s.open == rows[0][1] == 22898.1
    assert s.close == rows[-1][4] == 21925.7
    assert s.change_pct == pytest.approx((21925.7 / 22898.1 - 1) * 100)
    assert s.high == max(r[2] for r in rows)
    assert s.low == min(r[3] for r in rows)
    assert s.volume == pytest.approx(sum(r[5] for r in rows))
    rets = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False)]
    mu = sum(rets) / len(rets)
    sd = math.sqrt(sum((x - mu) ** 2 for x in rets) / (len(rets) - 1))
    assert s.volatility_pct == pytest.approx(sd * 100)
    # regression via the textbook n*Sxy - Sx*Sy formula
    n = len(closes)
    sx, sy = sum(range(n)), sum(closes)
    sxy = sum(i * y for i, y in enumerate(closes))
    sxx = sum(i * i for i in range(n))
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    assert s.fitted_move_pct == pytest.approx(slope * (n - 1) / (sy / n) * 100)
    assert s.trend == "downtrend"  # -4.25 % and a falling regression line


def test_summary_text_is_one_compact_line():
    s = MarketData().summary("BTC/USDT", 24)
    text = s.to_text()
    assert "\n" not in text and len(text) < 300
    assert text.startswith("BTC/USDT 5m, last 24h of data (2023-02-08 21:20 → 2023-02-09 21:15 UTC)")
    for part in (
        "open 22,898.1",
        "close 21,925.7",
        "(-4.25%)",
        "high 23,007.8",
        "low 21,817.5",
        "trend downtrend",
        "288 candles",
    ):
        assert part in text
    assert re.search(r"volatility \d\.\d\d%/5m", text)


@pytest.mark.parametrize("hours,count", [(1, 12), (0.5, 6), (4, 48), (24, 288)])
def test_summary_window_counts(hours, count):
    assert MarketData().summary("BTC/USDT", hours).n_candles == count


def test_summary_longer_than_data_covers_everything():
    s = MarketData().summary("BTC/USDT", 10_000)
    assert s.n_candles == 10999 and s.first_ts_ms == FIRST_TS
    assert "all 916.6h of data" in s.to_text()


@pytest.mark.parametrize("hours", [0, -1, float("nan"), float("inf")])
def test_summary_rejects_bad_hours(hours):
    with pytest.raises(ValueError):
        MarketData().summary("BTC/USDT", hours)


def test_unknown_symbol_error_lists_available():
    with pytest.raises(UnknownSymbolError) as ei:
        MarketData().candles("DOGE/EUR")
    assert isinstance(ei.value, LookupError)
    assert "BTC/USDT" in str(ei.value) and "DOGE/EUR" in str(ei.value)
    assert ei.value.available == ["BTC/USDT"]


def test_other_timeframe_is_rejected():
    with pytest.raises(UnsupportedTimeframeError):
        MarketData().candles("BTC/USDT", "1h")


@pytest.mark.parametrize(
    "text", ["BTC/USDT", "btc/usdt", "BTCUSDT", "btc", " BTC-USDT ", "btc_usdt", "BTC/USDT:USDT"]
)
def test_normalize_symbol_lenient(text):
    assert normalize_symbol(text, ["BTC/USDT"]) == "BTC/USDT"


def test_normalize_symbol_base_ambiguity():
    assert normalize_symbol("eth", ["ETH/BTC", "ETH/USDT"]) == "ETH/USDT"
    with pytest.raises(UnknownSymbolError):
        normalize_symbol("eth", ["ETH/BTC", "ETH/EUR"])
    for bad in ("", "doge", "usdt"):
        with pytest.raises(UnknownSymbolError):
            normalize_symbol(bad, ["BTC/USDT"])


# --------------------------------------------------------------------------- trend rule


def test_trend_labels_on_synthetic_series(tmp_path):
    n = 288
    up = [100 * (1 + 0.0001 * i) for i in range(n)]  # +2.9 %
    down = [100 * (1 - 0.0001 * i) for i in range(n)]
    flat = [100 + 0.3 * math.sin(i / 5) for i in range(n)]
    assert summarize([Candle(*r) for r in synthetic(up)], "X/Y").trend == "uptrend"
    assert summarize([Candle(*r) for r in synthetic(down)], "X/Y").trend == "downtrend"
    assert summarize([Candle(*r) for r in synthetic(flat)], "X/Y").trend == "sideways"
    md = md_for(tmp_path, synthetic(up))
    assert md.symbols == ["ETH/USDT"]
    assert md.summary("eth", 24).trend == "uptrend"


def test_trend_needs_both_change_and_slope():
    n = 200
    spike = [100.0] * (n - 1) + [105.0]  # +5 % on the last candle only
    vee = [100 - abs(i - n / 2) * 0.05 for i in range(n)]  # round trip
    s_spike = summarize([Candle(*r) for r in synthetic(spike)], "X/Y")
    assert s_spike.change_pct > 4 and s_spike.fitted_move_pct < 0.5
    assert s_spike.trend == "sideways"
    assert summarize([Candle(*r) for r in synthetic(vee)], "X/Y").trend == "sideways"
    assert classify_trend(1.0, 1.0) == "uptrend"
    assert classify_trend(-1.0, -0.6) == "downtrend"
    assert classify_trend(1.0, -1.0) == "sideways"
    assert classify_trend(0.4, 0.4) == "sideways"
    assert classify_trend(0.4, 0.4, threshold_pct=0.3) == "uptrend"


def test_format_price():
    assert format_price(23250.1) == "23,250.1"
    assert format_price(22950.0) == "22,950.0"
    assert format_price(1666.21) == "1,666.21"
    assert format_price(0.00006574) == "0.00006574"
    assert format_price(0.5) == "0.5"
