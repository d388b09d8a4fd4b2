"""Bundled offline market data (see PROVENANCE.md in this folder).

The files here are data, not code: ``BTC_USDT-5m.json.gz`` (ccxt ``fetch_ohlcv`` rows),
``binance_markets_subset_ticksize.json`` (ccxt unified markets) and their licences.
``_convert.py`` regenerates them from the shared market-data snapshot.
"""

from pathlib import Path

DATA_DIR: Path = Path(__file__).resolve().parent
"""Directory holding the bundled data files."""
