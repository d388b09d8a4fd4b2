"""Offline OHLCV market data: loading, symbol lookup and compact summaries.

The bundled data (``alina/trading/data/``, see its PROVENANCE.md) is *historical*: BTC/USDT
5-minute candles from 2023-01-02 to 2023-02-09. Every "last price" or "last 24h" here is
relative to the end of the data, never to the wall clock.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import statistics
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from alina.trading.data import DATA_DIR

BASE_TIMEFRAME = "5m"
TIMEFRAME_MS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
TREND_THRESHOLD_PCT = 0.5
"""Default move (in %) that both the open→close change and the regression line must exceed
for a window to count as an up- or downtrend (see :func:`classify_trend`)."""

_COLUMNS = ("date", "open", "high", "low", "close", "volume")
_FILE_RE = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<tf>\d+[mhdw])\.json(\.gz)?$")


class Candle(NamedTuple):
    """One OHLCV candle; ``ts_ms`` is the candle's open time in UTC milliseconds."""

    ts_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class UnknownSymbolError(LookupError):
    """Raised for a symbol that has no data; the message lists the available symbols."""

    def __init__(self, symbol: str, available: Iterable[str]) -> None:
        self.symbol = symbol
        self.available = sorted(available)
        super().__init__(f"unknown symbol {symbol!r}; available: {', '.join(self.available) or 'none'}")


class UnsupportedTimeframeError(ValueError):
    """Raised for a timeframe that the bundled data does not provide."""


# --------------------------------------------------------------------------- loading


def _to_ms(value: Any) -> int:
    """Convert a timestamp (epoch ms number or ISO-8601 string) to integer milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"bad timestamp {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(round(dt.timestamp() * 1000))
    raise ValueError(f"bad timestamp {value!r}")


def _row_to_candle(row: Any) -> Candle:
    if not isinstance(row, (list, tuple)) or len(row) < 6:
        raise ValueError(f"OHLCV row must be [ts_ms, open, high, low, close, volume], got {row!r}")
    ts, o, h, low, c, v = row[:6]
    return Candle(_to_ms(ts), float(o), float(h), float(low), float(c), float(v if v is not None else "nan"))


def parse_ohlcv(obj: Any) -> list[Candle]:
    """Parse already-decoded JSON in J-OHLCV (list of rows) or column-oriented form.

    Column-oriented means pandas ``to_json`` default: ``{"date": {"0": ts_ms, ...},
    "open": {...}, ...}``; columns are zipped on their index keys. The result is sorted by
    timestamp with duplicate timestamps removed (the last one wins).

    Raises:
        ValueError: if the structure is neither format.
    """
    if isinstance(obj, list):
        candles = [_row_to_candle(r) for r in obj]
    elif isinstance(obj, dict) and all(c in obj for c in _COLUMNS):
        index = obj["date"]
        if not isinstance(index, dict):
            raise ValueError("column-oriented JSON must map column -> {index: value}")
        candles = []
        for key in index:
            try:
                row = [obj[c][key] for c in _COLUMNS]
            except KeyError as exc:
                raise ValueError(f"index {key!r} missing in column data") from exc
            candles.append(_row_to_candle(row))
    else:
        raise ValueError("unrecognised OHLCV JSON: expected a list of rows or columns " + "/".join(_COLUMNS))
    by_ts = {c.ts_ms: c for c in candles}
    return [by_ts[t] for t in sorted(by_ts)]


def load_ohlcv(path: str | Path) -> list[Candle]:
    """Load candles from a ``.json`` or gzip'd ``.json.gz`` file (J-OHLCV or column-oriented)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the suffix
        raw = gzip.decompress(raw)
    return parse_ohlcv(json.loads(raw))


def available_symbols(data_dir: Path = DATA_DIR, timeframe: str = BASE_TIMEFRAME) -> dict[str, Path]:
    """Map each bundled symbol (e.g. ``"BTC/USDT"``) to its data file for ``timeframe``.

    Files are found by name: ``BASE_QUOTE-<tf>.json[.gz]``.
    """
    found: dict[str, Path] = {}
    for p in sorted(Path(data_dir).glob(f"*-{timeframe}.json*")):
        m = _FILE_RE.match(p.name)
        if m and m["tf"] == timeframe:
            found[f"{m['base']}/{m['quote']}"] = p
    return found


def _compact(symbol: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", symbol.upper())


def normalize_symbol(text: str, available: Iterable[str]) -> str:
    """Resolve lenient user input to one of ``available`` symbols.

    Accepts any case and separators ("btc/usdt", "BTC-USDT", "BTCUSDT") and a bare base
    asset ("btc") when it names exactly one available pair (a USDT quote wins a tie).

    Raises:
        UnknownSymbolError: when nothing (or nothing unique) matches.
    """
    avail = list(available)
    raw = (text or "").strip()
    if raw in avail:
        return raw
    key = _compact(raw.split(":")[0])  # "BTC/USDT:USDT" (perp notation) -> "BTCUSDT"
    if key:
        for s in avail:
            if _compact(s) == key:
                return s
        by_base = [s for s in avail if _compact(s.split("/")[0]) == key]
        if len(by_base) == 1:
            return by_base[0]
        usdt = [s for s in by_base if s.endswith("/USDT")]
        if len(usdt) == 1:
            return usdt[0]
    raise UnknownSymbolError(raw, avail)


# --------------------------------------------------------------------------- summary


def iso_utc(ts_ms: int) -> str:
    """Format epoch milliseconds as ``YYYY-MM-DDTHH:MM:SSZ`` (ISO-8601, UTC)."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def format_price(x: float) -> str:
    """Readable price: thousands separators, 1-2 decimals above 1, up to 8 decimals below."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) >= 1:
        s = f"{x:,.2f}"
        return s[:-1] if s.endswith("0") else s
    s = f"{x:.8f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def regression_slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` against their index (units per step); 0 if < 2 points."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    sxx = sum((i - mean_x) ** 2 for i in range(n))
    sxy = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(values))
    return sxy / sxx


def classify_trend(
    change_pct: float, fitted_move_pct: float, threshold_pct: float = TREND_THRESHOLD_PCT
) -> str:
    """Label a window ``"uptrend"``, ``"downtrend"`` or ``"sideways"``.

    Rule: uptrend when the open→close change AND the move of the least-squares line through
    the closes (slope × (n-1), as % of the mean close) are both >= ``threshold_pct``;
    downtrend when both are <= -``threshold_pct``; otherwise sideways. Requiring both keeps a
    single late spike (change only) or a round trip (slope only) from counting as a trend.
    """
    if change_pct >= threshold_pct and fitted_move_pct >= threshold_pct:
        return "uptrend"
    if change_pct <= -threshold_pct and fitted_move_pct <= -threshold_pct:
        return "downtrend"
    return "sideways"


@dataclass(frozen=True)
class CandleSummary:
    """Statistics over a window of candles at the end of the data."""

    symbol: str
    timeframe: str
    hours: float
    """Requested window length."""
    covered_hours: float
    """Window actually covered (less than ``hours`` when the data is shorter)."""
    n_candles: int
    first_ts_ms: int
    """Open time of the first candle in the window."""
    last_ts_ms: int
    """Open time of the last candle in the window (= last candle of the data)."""
    open: float
    close: float
    change_pct: float
    high: float
    low: float
    volatility_pct: float
    """Sample standard deviation of log returns between consecutive closes, in % per candle."""
    volume: float
    fitted_move_pct: float
    """Move of the least-squares line through the closes over the window, % of mean close."""
    trend: str

    @property
    def first_iso(self) -> str:
        """First candle open time, ISO-8601 UTC."""
        return iso_utc(self.first_ts_ms)

    @property
    def last_iso(self) -> str:
        """Last candle open time, ISO-8601 UTC."""
        return iso_utc(self.last_ts_ms)

    def to_text(self) -> str:
        """One compact line (< 300 chars) describing the window, for a small model."""
        span = (
            f"last {self.hours:g}h of data"
            if self.covered_hours >= self.hours
            else f"all {round(self.covered_hours, 1):g}h of data"
        )
        return (
            f"{self.symbol} {self.timeframe}, {span} ({_short_utc(self.first_ts_ms)} → "
            f"{_short_utc(self.last_ts_ms)} UTC): open {format_price(self.open)} close "
            f"{format_price(self.close)} ({self.change_pct:+.2f}%), high {format_price(self.high)} "
            f"low {format_price(self.low)}, trend {self.trend}, volatility "
            f"{self.volatility_pct:.2f}%/{self.timeframe}, {self.n_candles} candles"
        )


def summarize(
    candles: list[Candle],
    symbol: str,
    hours: float = 24.0,
    timeframe: str = BASE_TIMEFRAME,
    trend_threshold_pct: float = TREND_THRESHOLD_PCT,
) -> CandleSummary:
    """Summarise the candles whose open time lies within the last ``hours`` of the data.

    The window ends at the close of the last candle and contains the candles with
    ``ts_ms > last_ts_ms - hours`` (288 candles for 24 h of gapless 5m data).

    Raises:
        ValueError: if ``candles`` is empty or ``hours`` is not a positive number.
    """
    if not candles:
        raise ValueError(f"no candles for {symbol}")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise ValueError(f"hours must be a positive number, got {hours!r}")
    tf_ms = TIMEFRAME_MS.get(timeframe, 300_000)
    last_ts = candles[-1].ts_ms
    cutoff = last_ts - hours * 3_600_000
    window = [c for c in candles if c.ts_ms > cutoff] or candles[-1:]
    closes = [c.close for c in window]
    first, last = window[0], window[-1]
    change_pct = (last.close - first.open) / first.open * 100 if first.open else 0.0
    log_returns = [math.log(b / a) for a, b in zip(closes, closes[1:], strict=False) if a > 0 and b > 0]
    vol = statistics.stdev(log_returns) * 100 if len(log_returns) >= 2 else 0.0
    mean_close = sum(closes) / len(closes)
    fitted = regression_slope(closes) * (len(closes) - 1) / mean_close * 100 if mean_close else 0.0
    return CandleSummary(
        symbol=symbol,
        timeframe=timeframe,
        hours=float(hours),
        covered_hours=round((last_ts + tf_ms - first.ts_ms) / 3_600_000, 2),
        n_candles=len(window),
        first_ts_ms=first.ts_ms,
        last_ts_ms=last.ts_ms,
        open=first.open,
        close=last.close,
        change_pct=change_pct,
        high=max(c.high for c in window),
        low=min(c.low for c in window),
        volatility_pct=vol,
        volume=sum(c.volume for c in window),
        fitted_move_pct=fitted,
        trend=classify_trend(change_pct, fitted, trend_threshold_pct),
    )


# --------------------------------------------------------------------------- facade


class MarketData:
    """Cached, thread-safe access to the bundled (or given) historical candle files."""

    def __init__(self, files: dict[str, Path] | None = None, timeframe: str = BASE_TIMEFRAME) -> None:
        """Use ``files`` (symbol -> path, all of ``timeframe``) or the bundled data by default."""
        self._files = dict(files) if files is not None else available_symbols(timeframe=timeframe)
        self._timeframe = timeframe
        self._cache: dict[str, list[Candle]] = {}
        self._lock = threading.Lock()

    @property
    def symbols(self) -> list[str]:
        """Available symbols, sorted."""
        return sorted(self._files)

    def resolve(self, symbol: str) -> str:
        """Normalise lenient input ("btc", "BTCUSDT") to an available symbol (see normalize_symbol)."""
        return normalize_symbol(symbol, self._files)

    def candles(self, symbol: str, timeframe: str = BASE_TIMEFRAME) -> list[Candle]:
        """All candles of ``symbol`` (loaded once, then cached), oldest first.

        Raises:
            UnknownSymbolError: unknown symbol.
            UnsupportedTimeframeError: any timeframe other than the data's own.
        """
        if timeframe != self._timeframe:
            raise UnsupportedTimeframeError(
                f"timeframe {timeframe!r} not available; the data is {self._timeframe} only"
            )
        sym = self.resolve(symbol)
        with self._lock:
            if sym not in self._cache:
                self._cache[sym] = load_ohlcv(self._files[sym])
            return self._cache[sym]

    def last_price(self, symbol: str) -> tuple[float, int]:
        """``(close, ts_ms)`` of the last candle in the data (historical, not live)."""
        last = self.candles(symbol)[-1]
        return last.close, last.ts_ms

    def summary(
        self, symbol: str, hours: float = 24, trend_threshold_pct: float = TREND_THRESHOLD_PCT
    ) -> CandleSummary:
        """Summary over the last ``hours`` of DATA (not wall-clock time); see :func:`summarize`."""
        sym = self.resolve(symbol)
        return summarize(self.candles(sym), sym, hours, self._timeframe, trend_threshold_pct)
