"""Plain data types shared by the exchanges, the risk guard and the desk.

Amounts are in the base currency, prices and money in the quote currency. Orders and fills are
ordinary dataclasses (not ccxt dicts), so paper and live look the same to the code above them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "AccountView",
    "Balance",
    "Fill",
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Position",
    "Side",
    "Ticker",
    "new_client_order_id",
]

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
OrderStatus = Literal["open", "closed", "canceled", "rejected"]

CLIENT_ID_PREFIX = "alina"


def new_client_order_id() -> str:
    """A fresh client order id: ``alina`` + 27 hex chars (32 chars; fits Binance's 36-char rule)."""
    return CLIENT_ID_PREFIX + uuid.uuid4().hex[:27]


@dataclass(frozen=True)
class OrderRequest:
    """What the caller wants; ``price`` is None for market orders."""

    symbol: str
    side: Side
    type: OrderType
    amount: float
    price: float | None = None
    client_order_id: str = field(default_factory=new_client_order_id)


@dataclass
class Order:
    """An order as the exchange knows it."""

    id: str
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: float
    price: float | None
    status: OrderStatus
    timestamp: int
    filled: float = 0.0
    average: float | None = None
    fee: float = 0.0
    """Fees paid so far, quote currency."""

    @property
    def remaining(self) -> float:
        """Amount not filled yet."""
        return max(0.0, self.amount - self.filled)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return asdict(self)


@dataclass(frozen=True)
class Fill:
    """One execution: ``fee`` in quote currency, ``liquidity`` taker or maker."""

    order_id: str
    client_order_id: str
    symbol: str
    side: Side
    amount: float
    price: float
    fee: float
    fee_rate: float
    liquidity: Literal["taker", "maker"]
    timestamp: int


@dataclass(frozen=True)
class Ticker:
    """Current prices of one symbol; ``timestamp`` is exchange (or replay) time in ms."""

    symbol: str
    last: float
    bid: float | None
    ask: float | None
    timestamp: int
    source: str
    """"replay" (packaged candles), "live" (exchange ticker)."""


@dataclass(frozen=True)
class Balance:
    """One currency: ``free`` can be spent, ``used`` is reserved by open orders."""

    currency: str
    free: float
    used: float

    @property
    def total(self) -> float:
        """free + used."""
        return self.free + self.used


@dataclass(frozen=True)
class Position:
    """A spot holding valued at the last price; PnL in quote currency (fees not included)."""

    symbol: str
    amount: float
    entry_price: float
    last_price: float
    unrealized_pnl: float
    realized_pnl: float

    @property
    def notional(self) -> float:
        """amount x last price."""
        return self.amount * self.last_price


@dataclass(frozen=True)
class AccountView:
    """What the risk guard sees: positions and open orders by symbol, prices, equity."""

    last_prices: dict[str, float]
    positions: dict[str, float]
    """symbol -> base amount held."""
    open_orders: list[Order]
    equity: float
    day_start_equity: float

    def pending_buy(self, symbol: str) -> float:
        """Base amount that open buy orders on ``symbol`` may still add."""
        return sum(o.remaining for o in self.open_orders if o.symbol == symbol and o.side == "buy")
