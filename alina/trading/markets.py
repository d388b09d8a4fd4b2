"""Market rules (precision, limits, fees) from ccxt's own helpers on a markets-loaded instance.

The instance is a keyless ``ccxt.async_support`` exchange. Offline, its markets
come from a unified-markets JSON file through ``set_markets`` (no network); online, from
``load_markets()``. Rounding uses ccxt's ``amount_to_precision`` (truncates) and
``price_to_precision`` (rounds), so paper orders are rounded exactly as ccxt would round a live one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async

from alina.trading.errors import ExchangeUnavailable, OrderRejected
from alina.trading.orders import OrderRequest

__all__ = ["MarketRules", "new_ccxt"]


def new_ccxt(exchange_id: str, credentials: dict[str, str] | None = None) -> Any:
    """A ``ccxt.async_support`` instance of ``exchange_id`` (keys only if given; never verbose)."""
    cls = getattr(ccxt_async, exchange_id, None)
    if cls is None:
        raise ValueError(f"unknown ccxt exchange id {exchange_id!r}")
    options: dict[str, Any] = {"enableRateLimit": True, "verbose": False}
    options.update(credentials or {})
    exchange = cls(options)
    # The account view needs every open order; some exchanges (binance) raise a warning instead.
    exchange.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    return exchange


def _fmt(x: float) -> str:
    return f"{x:.12g}"


class MarketRules:
    """Precision, limits and fee rates of one exchange's markets."""

    def __init__(self, exchange: Any) -> None:
        """Wrap a ccxt instance whose markets are already loaded."""
        if not exchange.markets:
            raise ValueError("the ccxt instance has no markets loaded")
        self._ex = exchange

    @classmethod
    def from_file(cls, exchange_id: str, path: str | Path) -> MarketRules:
        """Markets from a ccxt unified-markets JSON file (``{symbol: market}``), offline."""
        markets = json.loads(Path(path).read_text(encoding="utf-8"))
        ex = new_ccxt(exchange_id)
        ex.set_markets(markets)
        return cls(ex)

    @classmethod
    async def from_exchange(cls, exchange: Any) -> MarketRules:
        """Markets fetched by ``exchange.load_markets()`` (needs the network)."""
        try:
            await exchange.load_markets()
        except ccxt.BaseError as exc:
            raise ExchangeUnavailable(
                f"cannot load markets from {exchange.id}: {type(exc).__name__}"
            ) from exc
        return cls(exchange)

    @property
    def exchange_id(self) -> str:
        """The ccxt exchange id."""
        return str(self._ex.id)

    @property
    def markets(self) -> dict[str, Any]:
        """The ccxt unified markets, symbol -> market (shared, do not mutate)."""
        return dict(self._ex.markets)

    @property
    def symbols(self) -> list[str]:
        """All market symbols, sorted."""
        return sorted(self._ex.markets)

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt unified market dict; OrderRejected for an unknown symbol."""
        try:
            return dict(self._ex.market(symbol))
        except ccxt.BadSymbol:
            raise OrderRejected(f"unknown market {symbol!r} on {self.exchange_id}") from None

    def fee_rate(self, symbol: str, liquidity: str) -> float:
        """Fee rate (fraction of notional) for ``liquidity`` taker or maker.

        The rate, never ccxt's fee ``cost``: ``calculate_fee`` charges buys in the base currency
        and is wrong for contracts, while every fee here is rate x notional in quote currency.
        """
        rate = self.market(symbol).get(liquidity)
        return float(rate) if rate is not None else 0.0

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        """``amount`` truncated to the market's step size; OrderRejected if it rounds to nothing."""
        self.market(symbol)
        try:
            value = float(self._ex.amount_to_precision(symbol, amount))
        except ccxt.InvalidOrder:
            step = self.market(symbol)["precision"]["amount"]
            raise OrderRejected(
                f"amount {_fmt(amount)} is below the {symbol} step size {_fmt(float(step))}"
            ) from None
        if value <= 0:
            raise OrderRejected(f"amount {_fmt(amount)} rounds to 0 on {symbol}")
        return value

    def price_to_precision(self, symbol: str, price: float) -> float:
        """``price`` rounded to the market's tick size."""
        self.market(symbol)
        return float(self._ex.price_to_precision(symbol, price))

    def normalize(self, request: OrderRequest) -> OrderRequest:
        """The request with amount and price rounded to market precision (same client id)."""
        price = self.price_to_precision(request.symbol, request.price) if request.price is not None else None
        return OrderRequest(
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            amount=self.amount_to_precision(request.symbol, request.amount),
            price=price,
            client_order_id=request.client_order_id,
        )

    def check_limits(self, request: OrderRequest, reference_price: float) -> None:
        """Raise OrderRejected if the (rounded) order breaks a market limit.

        Checks amount min/max, market-order max quantity, price min/max (limit orders) and
        cost min/max (min notional), valuing market orders at ``reference_price``.
        """
        m = self.market(request.symbol)
        limits = m.get("limits") or {}
        sym = request.symbol

        def bounds(key: str) -> tuple[float | None, float | None]:
            entry = limits.get(key) or {}
            lo, hi = entry.get("min"), entry.get("max")
            return (float(lo) if lo else None, float(hi) if hi else None)

        lo, hi = bounds("amount")
        if lo is not None and request.amount < lo:
            raise OrderRejected(f"amount {_fmt(request.amount)} is below the {sym} minimum {_fmt(lo)}")
        if hi is not None and request.amount > hi:
            raise OrderRejected(f"amount {_fmt(request.amount)} is above the {sym} maximum {_fmt(hi)}")
        if request.type == "market":
            _, market_hi = bounds("market")
            if market_hi is not None and request.amount > market_hi:
                raise OrderRejected(
                    f"market order amount {_fmt(request.amount)} is above the {sym} market-order maximum "
                    f"{_fmt(market_hi)}; use a limit order or split it"
                )
        price = request.price if request.price is not None else reference_price
        if not (math.isfinite(price) and price > 0):
            raise OrderRejected(f"price must be a positive number (got {price!r})")
        if request.type == "limit":
            lo, hi = bounds("price")
            if lo is not None and price < lo:
                raise OrderRejected(f"price {_fmt(price)} is below the {sym} minimum {_fmt(lo)}")
            if hi is not None and price > hi:
                raise OrderRejected(f"price {_fmt(price)} is above the {sym} maximum {_fmt(hi)}")
        cost = request.amount * price
        lo, hi = bounds("cost")
        if lo is not None and cost < lo:
            raise OrderRejected(
                f"order value {_fmt(cost)} {m.get('quote', '')} is below the {sym} minimum notional "
                f"{_fmt(lo)}"
            )
        if hi is not None and cost > hi:
            raise OrderRejected(f"order value {_fmt(cost)} is above the {sym} maximum notional {_fmt(hi)}")

    async def close(self) -> None:
        """Close the ccxt instance's HTTP session (if one was ever opened)."""
        await self._ex.close()
