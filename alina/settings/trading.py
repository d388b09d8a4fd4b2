"""The ``trading:`` section of ``config.yaml``: mode, exchange, markets, paper account, risk limits.

Secrets never live here: ``api_key_env`` and ``secret_env`` hold the NAMES of the environment
variables that carry the exchange keys, and the keys are read only when a live exchange is
opened (:func:`alina.trading.exchange.open_exchange`); a name that is not a conventional
environment variable name (``A-Z``, ``0-9``, ``_``) is refused without being echoed. Validation
happens in two steps, like the rest of the configuration: the pydantic structure (``extra="forbid"``), then
:meth:`TradingConfig.cross_field_problems`, whose lines read ``path: what is wrong (got X)``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from alina._secrets import env_name_problem
from alina.settings._base import StrictModel as _Strict

__all__ = [
    "DATA_DIR",
    "ReplayConfig",
    "RiskConfig",
    "SlippageConfig",
    "TradingConfig",
    "resolve_markets_file",
]


DATA_DIR: Path = Path(__file__).resolve().parent.parent / "trading" / "data"
"""The bundled market data (``alina.trading.data.DATA_DIR``), found without importing alina.trading."""


class SlippageConfig(_Strict):
    """Market-order slippage of the paper exchange (see docs/paper-exchange.md).

    A market order fills at the next price moved against the trader by
    ``min(max_bps, base_bps + impact_bps * amount / next_candle_volume)`` basis points.
    """

    base_bps: float = Field(2.0, ge=0, le=1000)
    """Fixed part, in basis points (1 bp = 0.01 %), paid on every market order."""
    impact_bps: float = Field(100.0, ge=0, le=10000)
    """Size part: basis points added per 100 % of the next candle's volume the order takes."""
    max_bps: float = Field(500.0, ge=0, le=5000)
    """Cap on the total (500 bp = 5 %, freqtrade's dry-run cap)."""


class ReplayConfig(_Strict):
    """Where the paper exchange's replay clock starts in the packaged candles."""

    start_hours_before_end: float = Field(168.0, ge=0, le=100_000)
    """The clock starts this many hours before the last candle (later candles are 'the future')."""


class RiskConfig(_Strict):
    """Limits the risk guard enforces on every order, paper or live (amounts in the quote currency)."""

    max_order_notional: float = Field(1000.0, gt=0)
    """Largest single order: amount x price (limit price, or last price for market orders)."""
    max_position_notional: float = Field(2500.0, gt=0)
    """Largest position per symbol (held + open buy orders), valued at the last price."""
    max_total_exposure: float = Field(5000.0, gt=0)
    """Sum of all positions and open buy orders, valued at last prices."""
    max_open_orders: int = Field(10, ge=1, le=1000)
    """Resting orders allowed at once (an accepted limit order may add one)."""
    daily_loss_limit: float = Field(500.0, gt=0)
    """Once equity is this far below the day's opening equity (UTC), only risk-reducing orders pass."""
    price_band_pct: float = Field(5.0, gt=0, le=100)
    """A limit price must lie within this many percent of the last price."""
    kill_switch: bool = False
    """True blocks every new order (cancels still work)."""


class TradingConfig(_Strict):
    """``trading:`` — the trading desk: paper or live, the exchange, the paper account, risk limits."""

    mode: Literal["paper", "live"] = "paper"
    """paper: simulated fills on real data. live: real orders, which also need the API keys in
    the environment and ``--live`` on the command line."""
    exchange: str = Field("binance", min_length=1)
    """ccxt exchange id."""
    markets_file: str | None = "binance_markets_subset_ticksize.json"
    """Paper: ccxt unified markets JSON (relative to alina/trading/data/ or absolute). null:
    load markets from the exchange (needs the network). Live always loads from the exchange."""
    api_key_env: str = "ALINA_EXCHANGE_API_KEY"
    """NAME of the environment variable holding the API key (never the key itself)."""
    secret_env: str = "ALINA_EXCHANGE_API_SECRET"
    """NAME of the environment variable holding the API secret."""
    quote_currency: str = Field("USDT", min_length=1)
    """Currency of balances, notional limits, fees and PnL."""
    price_source: Literal["replay", "live"] = "replay"
    """Paper only. replay: packaged candles (offline); live: the exchange's public tickers."""
    starting_balances: dict[str, float] = Field(default_factory=lambda: {"USDT": 10_000.0})
    """Paper account at start, currency -> amount."""
    slippage: SlippageConfig = Field(default_factory=SlippageConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    market_data_retries: int = Field(2, ge=0, le=10)
    """Extra attempts for market-data reads (never for order placement)."""
    risk: RiskConfig = Field(default_factory=RiskConfig)

    def cross_field_problems(self, prefix: str = "trading") -> list[str]:
        """Every rule that spans fields, as ``path: what is wrong (got X)`` lines (empty = fine)."""
        problems: list[str] = []
        bad_names = []
        for field in ("api_key_env", "secret_env"):
            env_problem = env_name_problem(getattr(self, field))
            if env_problem:
                bad_names.append(field)
                problems.append(f"{prefix}.{field}: {env_problem}")
        if self.api_key_env == self.secret_env and not bad_names:
            problems.append(f"{prefix}.secret_env: must differ from api_key_env (got {self.secret_env!r})")
        if not _is_ccxt_exchange(self.exchange):
            problems.append(f"{prefix}.exchange: not a ccxt exchange id (got {self.exchange!r})")
        if self.mode == "paper":
            if self.markets_file is not None and not resolve_markets_file(self.markets_file).is_file():
                problems.append(
                    f"{prefix}.markets_file: file not found in {DATA_DIR} or as a path "
                    f"(got {self.markets_file!r})"
                )
            quote = self.starting_balances.get(self.quote_currency)
            if quote is None or quote <= 0:
                problems.append(
                    f"{prefix}.starting_balances: needs a positive {self.quote_currency} balance "
                    f"(got {self.starting_balances!r})"
                )
            negative = {k: v for k, v in self.starting_balances.items() if v < 0}
            if negative:
                problems.append(f"{prefix}.starting_balances: balances cannot be negative (got {negative!r})")
        if self.slippage.base_bps > self.slippage.max_bps:
            problems.append(
                f"{prefix}.slippage.base_bps: larger than slippage.max_bps {self.slippage.max_bps:g} "
                f"(got {self.slippage.base_bps:g})"
            )
        if self.risk.max_order_notional > self.risk.max_total_exposure:
            problems.append(
                f"{prefix}.risk.max_order_notional: larger than risk.max_total_exposure "
                f"{self.risk.max_total_exposure:g}, so no such order could pass "
                f"(got {self.risk.max_order_notional:g})"
            )
        return problems


def _is_ccxt_exchange(exchange_id: str) -> bool:
    """True if ccxt ships an exchange module of that id (found without importing ccxt: 0.4 s)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", exchange_id):
        return False
    spec = importlib.util.find_spec("ccxt")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(loc) / f"{exchange_id}.py").is_file() for loc in locations)


def resolve_markets_file(name: str) -> Path:
    """The markets file path: as given if absolute or existing, else inside ``alina/trading/data``."""
    p = Path(name).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return DATA_DIR / name
