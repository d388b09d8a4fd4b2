"""Regenerate the bundled market data in this folder from the shared snapshot.

Usage (from the repository root)::

    .venv/bin/python -m alina.trading.data._convert            # rebuild files + PROVENANCE.md
    .venv/bin/python -m alina.trading.data._convert --check    # verify, write nothing
    .venv/bin/python -m alina.trading.data._convert --src-root /path/to/shared/data/market

What it does:

1. Reads freqtrade's column-oriented JSON ``orderflow/candles.json`` (pandas ``to_json``
   layout ``{"date": {"0": ts_ms, ...}, "open": {...}, ...}``), zips the columns on the
   integer index keys (sorted numerically) and validates every row (contiguous index,
   strictly increasing 5-minute timestamps, ``low <= open,close <= high``, volume >= 0).
2. Writes ``BTC_USDT-5m.json.gz``: a gzip'd JSON list of ``[ts_ms, open, high, low, close,
   volume]`` rows (exactly what ccxt ``fetch_ohlcv`` returns). Numbers are written with
   Python's shortest round-trip ``repr``, so values are bit-identical to the source; the
   gzip header carries no file name and mtime 0, so the output is reproducible.
3. Copies (byte for byte) the GPL-3.0 licence of the freqtrade data, the ccxt-derived
   Binance markets subset and its MIT licence.
4. Writes ``PROVENANCE.md`` with the origin and sha256 of every input and output.

Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
from datetime import UTC
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent
# alina/trading/data/_convert.py -> parents[3] is the repository root; shared/ sits beside it.
DEFAULT_SRC_ROOT = Path(__file__).resolve().parents[4] / "shared" / "data" / "market"

ORIGIN_REPO = "freqtrade/freqtrade"
ORIGIN_COMMIT = "c9ae5e1e9ff25bb55dd61f5e5519f7c479291edb"
ORIGIN_PATH = "tests/testdata/orderflow/candles.json"
ORIGIN_BLOB_SHA1 = "0e7fd997cb0fbbd9e1ec68e8c46a95f55eb22be1"

CANDLES_SRC = "freqtrade/orderflow/candles.json"
CANDLES_OUT = "BTC_USDT-5m.json.gz"
TIMEFRAME_MS = 5 * 60 * 1000
COLUMNS = ("date", "open", "high", "low", "close", "volume")

# (source path relative to the snapshot root, output name) copied byte for byte
COPIES = (
    ("freqtrade/LICENSE.GPL-3.0.txt", "LICENSE.GPL-3.0.txt"),
    ("ccxt-derived/binance_markets_subset_ticksize.json", "binance_markets_subset_ticksize.json"),
    ("ccxt-derived/LICENSE.ccxt-MIT.txt", "LICENSE.ccxt-MIT.txt"),
)


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def columns_to_rows(cols: dict) -> list[list]:
    """Zip pandas-style column JSON into ``[ts_ms, o, h, l, c, v]`` rows and validate them.

    Raises:
        ValueError: on a missing column, mismatched index, null/non-numeric value,
            inconsistent OHLC or non-5m / non-increasing timestamps.
    """
    missing = [c for c in COLUMNS if c not in cols]
    if missing:
        raise ValueError(f"missing columns: {missing}")
    keys = sorted(cols["date"], key=int)
    if keys != [str(i) for i in range(len(keys))]:
        raise ValueError("index keys are not a contiguous 0..n-1 range")
    for c in COLUMNS[1:]:
        if set(cols[c]) != set(keys):
            raise ValueError(f"column {c!r} has a different index than 'date'")
    rows: list[list] = []
    for k in keys:
        ts = cols["date"][k]
        if not isinstance(ts, int) or isinstance(ts, bool):
            raise ValueError(f"row {k}: date {ts!r} is not integer milliseconds")
        vals = [cols[col][k] for col in COLUMNS[1:]]
        if any(not isinstance(x, (int, float)) or isinstance(x, bool) for x in vals):
            raise ValueError(f"row {k}: non-numeric value in {vals!r}")
        o, h, low, close, vol = (float(x) for x in vals)
        if not (low <= min(o, close) and h >= max(o, close) and vol >= 0):
            raise ValueError(f"row {k}: inconsistent OHLCV {vals!r}")
        rows.append([ts, o, h, low, close, vol])
    for prev, cur in zip(rows, rows[1:], strict=False):
        if cur[0] - prev[0] != TIMEFRAME_MS:
            raise ValueError(f"gap or disorder between {prev[0]} and {cur[0]}")
    return rows


def encode_rows(rows: list[list]) -> tuple[bytes, bytes]:
    """Return ``(json_bytes, gzip_bytes)`` for the rows; both are deterministic."""
    payload = json.dumps(rows, separators=(",", ":")).encode("ascii")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(payload)
    return payload, buf.getvalue()


def _iso(ts_ms: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def render_provenance(info: dict) -> str:
    """Render PROVENANCE.md from the checksums and stats gathered by :func:`build`."""
    rows = info["rows"]
    copies = "\n".join(f"| `{out}` | `{src}` | byte copy | `{info['sha'][out]}` |" for src, out in COPIES)
    return f"""# Provenance of the bundled market data

Generated by `alina/trading/data/_convert.py` (re-run with
`.venv/bin/python -m alina.trading.data._convert`; `--check` verifies without writing).
Do not edit by hand: change the template in `_convert.py` instead.

## BTC_USDT-5m.json.gz

* **Origin:** `{ORIGIN_REPO}` @ `{ORIGIN_COMMIT}`, path `{ORIGIN_PATH}`
  (git blob `{ORIGIN_BLOB_SHA1}`), licence **GPL-3.0** (text: `LICENSE.GPL-3.0.txt` here).
  Taken from the project's shared snapshot `shared/data/market/{CANDLES_SRC}`.
* **Content:** BTC/USDT 5-minute candles, {rows} rows, {_iso(info["first"])} .. {_iso(info["last"])} UTC
  (candle open times), no gaps. The origin does not name the exchange; tick patterns suggest
  Binance, possibly the USDT-M perpetual rather than spot. AgentAlina serves it as `BTC/USDT`.
  This is **historical** data: "last price" means the last close in the file, not today's price.
* **Conversion:** the column-oriented pandas JSON (`{{"date": {{"0": ts_ms, ...}}, "open": {{...}}, ...}}`)
  was zipped on its integer index into ccxt `fetch_ohlcv` rows `[ts_ms, open, high, low, close, volume]`,
  validated (contiguous index, strictly increasing 5m timestamps, `low <= open,close <= high`,
  volume >= 0), serialised as compact JSON (shortest round-trip floats, so values are unchanged)
  and gzip'd at level 9 with mtime 0 and no file name.
* **sha256 of the original** `candles.json`: `{info["sha"]["src"]}`
* **sha256 of the converted file** `BTC_USDT-5m.json.gz`: `{info["sha"][CANDLES_OUT]}`
* **sha256 of its decompressed JSON payload:** `{info["sha"]["payload"]}`
  (stable even if another zlib version compresses differently)

## Copied files

| file | from `shared/data/market/` | how | sha256 |
|---|---|---|---|
{copies}

`binance_markets_subset_ticksize.json` is itself **derived** (not a byte copy of upstream): 16
Binance markets hand-transcribed from ccxt's fixture `ts/src/test/static/markets/binance.json`
(`ccxt/ccxt` @ `0dca8ac0a3ce97d642fd9973b3121c2d6e3e3063`, MIT, text in `LICENSE.ccxt-MIT.txt`)
and converted from decimal-place to tick-size precision for ccxt 4.5. Check it against the
fixture before relying on it.
"""


def build(src_root: Path, out_dir: Path = OUT_DIR, write: bool = True) -> dict:
    """Convert and copy everything; return checksums and stats.

    With ``write=False`` nothing is written and every output that exists is compared with
    what would be written (mismatches are listed under ``"mismatches"``).
    """
    src_bytes = (src_root / CANDLES_SRC).read_bytes()
    rows = columns_to_rows(json.loads(src_bytes))
    payload, gz_bytes = encode_rows(rows)
    info: dict = {
        "rows": len(rows),
        "first": rows[0][0],
        "last": rows[-1][0],
        "sha": {
            "src": sha256_bytes(src_bytes),
            "payload": sha256_bytes(payload),
            CANDLES_OUT: sha256_bytes(gz_bytes),
        },
        "mismatches": [],
    }
    outputs: dict[str, bytes] = {CANDLES_OUT: gz_bytes}
    for src, out in COPIES:
        data = (src_root / src).read_bytes()
        info["sha"][out] = sha256_bytes(data)
        outputs[out] = data
    outputs["PROVENANCE.md"] = render_provenance(info).encode("utf-8")

    for name, data in outputs.items():
        target = out_dir / name
        if write:
            target.write_bytes(data)
        elif name == CANDLES_OUT and target.exists():
            # compare the decompressed payload: gzip bytes may differ across zlib builds
            if sha256_bytes(gzip.decompress(target.read_bytes())) != info["sha"]["payload"]:
                info["mismatches"].append(name)
        elif not target.exists() or target.read_bytes() != data:
            info["mismatches"].append(name)
    return info


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src-root", type=Path, default=DEFAULT_SRC_ROOT, help="shared/data/market directory")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR)
    ap.add_argument("--check", action="store_true", help="verify existing outputs, write nothing")
    args = ap.parse_args(argv)
    info = build(args.src_root, args.out_dir, write=not args.check)
    for name, digest in info["sha"].items():
        print(f"{digest}  {name}")
    print(f"{info['rows']} rows, {_iso(info['first'])} .. {_iso(info['last'])} UTC")
    if info["mismatches"]:
        print("MISMATCH: " + ", ".join(info["mismatches"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
