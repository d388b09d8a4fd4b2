"""Candle files: feather, JSON (plain, gzip, column form) and CSV load alike; bad files are named."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pytest

from alina.trading.backtest import DataFileError, Ohlcv, load_candles
from alina.trading.market_data import iso_utc

from .conftest import walk_rows

SHARED_FEATHER = Path(__file__).resolve().parents[3] / "shared/data/market/freqtrade/ETH_BTC-5m.feather"


def write_json(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows))
    return path


def write_json_gz(path: Path, rows: list) -> Path:
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    return path


def write_columns(path: Path, rows: list) -> Path:
    cols = ("date", "open", "high", "low", "close", "volume")
    path.write_text(json.dumps({c: {str(i): r[k] for i, r in enumerate(rows)} for k, c in enumerate(cols)}))
    return path


def write_csv_ms(path: Path, rows: list) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["ts", "open", "high", "low", "close", "volume"])
        w.writerows(rows)
    return path


def write_csv_iso(path: Path, rows: list) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Date", "Open", "High", "Low", "Close", "Volume", "note"])  # any case, extra columns
        w.writerows([[iso_utc(int(r[0])), *r[1:], "x"] for r in rows])
    return path


def write_feather(path: Path, rows: list) -> Path:
    """freqtrade's layout: ``date`` timestamp[ns, UTC], then float64 columns."""
    arr = np.array(rows, dtype=np.float64)
    table = pa.table(
        {
            "date": pa.array((arr[:, 0].astype(np.int64) * 1_000_000), type=pa.timestamp("ns", tz="UTC")),
            **{c: pa.array(arr[:, k + 1]) for k, c in enumerate(("open", "high", "low", "close", "volume"))},
        }
    )
    feather.write_feather(table, path)
    return path


WRITERS: dict[str, tuple[str, Callable[[Path, list], Path]]] = {
    "json": ("c.json", write_json),
    "json.gz": ("c.json.gz", write_json_gz),
    "columns": ("c.json", write_columns),
    "csv-ms": ("c.csv", write_csv_ms),
    "csv-iso": ("c.csv", write_csv_iso),
    "feather": ("c.feather", write_feather),
    "feather-named-dat": ("candles.dat", write_feather),  # recognised by content, not suffix
}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_every_format_loads_the_same_candles(tmp_path: Path, fmt: str) -> None:
    rows = walk_rows(120)
    name, write = WRITERS[fmt]
    got = load_candles(write(tmp_path / name, rows))
    want = Ohlcv.from_rows(rows)
    for field in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert got.timeframe_ms == 3_600_000 and got.source.endswith(name)


def test_unsorted_rows_are_sorted_and_duplicates_keep_the_last(tmp_path: Path) -> None:
    rows = walk_rows(10)
    shuffled = [rows[3], rows[0], *rows[1:], [rows[5][0], 1, 2, 0.5, 1.5, 7]]
    d = load_candles(write_json(tmp_path / "c.json", shuffled))
    assert len(d) == 10 and (np.diff(d.ts) > 0).all()
    assert d.close[5] == 1.5


@pytest.mark.skipif(not SHARED_FEATHER.exists(), reason="shared market data not beside the checkout")
def test_real_freqtrade_feather() -> None:
    d = load_candles(SHARED_FEATHER)
    assert len(d) == 5760 and d.timeframe_ms == 300_000
    assert iso_utc(int(d.ts[0])) == "2018-01-10T04:55:00Z"


BAD: dict[str, tuple[bytes | None, str]] = {
    "missing.json": (None, "cannot read the file"),
    "empty.csv": (b"", "CSV header must name"),
    "garbage.json": (b"[[1, 2, 3", "not valid JSON at line 1"),
    "wrong_shape.json": (b'{"a": 1}', "unrecognised OHLCV JSON"),
    "short_row.json": (b"[[1672531200000, 1, 2, 0.5]]", "OHLCV row must be"),
    "one_candle.json": (b"[[1672531200000, 1, 2, 0.5, 1.5, 3]]", "at least 2 candles"),
    "no_close.csv": (b"ts,open,high,low,volume\n1,1,1,1,1\n", "CSV header must name"),
    "text_price.csv": (b"ts,open,high,low,close,volume\n1672531200000,1,2,0.5,abc,3\n", "line 2"),
    "bad_date.csv": (
        b"date,open,high,low,close,volume\nyesterday,1,2,0.5,1,3\n2023-01-01,1,2,0.5,1,3\n",
        "yesterday",
    ),
    "negative.csv": (
        b"ts,open,high,low,close\n1672531200000,1,2,0.5,1\n1672534800000,1,2,0.5,-1\n",
        "candle at 2023-01-01T01:00:00Z has a non-positive or missing price",
    ),
    "inverted.csv": (
        b"ts,open,high,low,close\n1672531200000,1,2,0.5,1\n1672534800000,1,0.4,0.5,1\n",
        "low 0.5 above high 0.4",
    ),
    "binary.bin": (b"\x00\x01\x02\xff\xfe", "binary content"),
    "bad.feather": (b"ARROW1\x00\x00garbage", "not a readable feather file"),
    "bad.json.gz": (b"\x1f\x8b\x08\x00garbage", "corrupt gzip data"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_files_raise_an_error_naming_file_and_problem(tmp_path: Path, name: str) -> None:
    content, problem = BAD[name]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataFileError) as info:
        load_candles(path)
    assert str(info.value).startswith(f"{path}: ")
    assert problem in str(info.value)


def test_feather_without_price_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.feather"
    feather.write_feather(pa.table({"date": [1, 2], "price": [1.0, 2.0]}), path)
    with pytest.raises(DataFileError, match="needs a date/ts column and open, high, low, close"):
        load_candles(path)
