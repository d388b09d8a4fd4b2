"""The ``trading:`` section of ``config.yaml``; defined in :mod:`alina.settings.trading` (the
configuration layer must not import the trading package), re-exported here."""

from alina.settings.trading import (
    DATA_DIR,
    ReplayConfig,
    RiskConfig,
    SlippageConfig,
    TradingConfig,
    resolve_markets_file,
)

__all__ = [
    "DATA_DIR",
    "ReplayConfig",
    "RiskConfig",
    "SlippageConfig",
    "TradingConfig",
    "resolve_markets_file",
]
