"""Exchange adapters over ccxt (async): the common contract, the live adapter, and the gate.

:func:`open_exchange` returns a :class:`~alina.trading.paper.PaperExchange` (default) or a
:class:`LiveExchange`. Live needs ALL three: ``trading.mode: live`` in the config, both API keys
in the environment (variables named by ``api_key_env``/``secret_env``), and ``live=True`` (the
command's ``--live``). Anything less raises :class:`LiveTradingRefused` naming what is missing.

Keys are read from the environment only here, handed to one private ccxt instance, and never
stored elsewhere: adapters' ``repr`` shows no key, every error text passes through
:meth:`_Secrets.redact` (the held keys and anything key-shaped, see :mod:`alina._secrets`), and
market data uses a separate keyless instance.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol, cast

import ccxt

from alina._secrets import MASK, redact_text
from alina.trading.config import TradingConfig, resolve_markets_file
from alina.trading.errors import (
    DuplicateClientOrderId,
    ExchangeUnavailable,
    LiveTradingRefused,
    OrderRejected,
)
from alina.trading.feeds import LiveTickerFeed, PriceFeed, ReplayFeed, with_retries
from alina.trading.market_data import Candle
from alina.trading.markets import MarketRules, new_ccxt
from alina.trading.orders import AccountView, Balance, Order, OrderRequest, OrderStatus, Position, Ticker
from alina.trading.paper import PaperExchange, StateSink

__all__ = ["Exchange", "LiveExchange", "live_gate", "open_exchange"]

_DAY_MS = 86_400_000


class Exchange(Protocol):
    """What the desk needs from an exchange, paper or live."""

    mode: str
    rules: MarketRules

    @property
    def id(self) -> str:
        """Display id, e.g. ``paper:binance`` or ``binance``."""
        ...

    @property
    def symbols(self) -> list[str]:
        """Symbols that can be traded."""
        ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...
    async def fetch_balance(self) -> dict[str, Balance]: ...
    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...
    async def fetch_positions(self) -> list[Position]: ...
    async def fetch_order_by_client_id(
        self, client_order_id: str, symbol: str | None = None
    ) -> Order | None: ...
    async def create_order(self, request: OrderRequest) -> Order: ...
    async def cancel_order(self, order_id: str, symbol: str | None = None) -> Order: ...
    async def account_view(self, symbols: tuple[str, ...] = ()) -> AccountView: ...
    async def candles(self, symbol: str, limit: int) -> list[Candle]: ...
    async def close(self) -> None: ...


class _Secrets:
    """Holds key values only to strip them from text; its repr never shows them."""

    def __init__(self, *values: str) -> None:
        self._values = [v for v in values if v]

    def __repr__(self) -> str:
        return "_Secrets(***)"

    def redact(self, text: str) -> str:
        """``text`` with every held key value, and anything else secret-looking (a key-shaped
        token, ``apiKey=...`` in a URL, a signature; see :func:`~alina._secrets.redact_text`),
        replaced by ``***``."""
        for v in self._values:
            text = text.replace(v, MASK)
        return redact_text(text)


def live_gate(cfg: TradingConfig, live: bool, environ: Mapping[str, str]) -> list[str]:
    """What is missing for live trading (empty list: all three opt-ins are present)."""
    missing = []
    if cfg.mode != "live":
        missing.append(f"config trading.mode is {cfg.mode!r} (set trading.mode: live)")
    for name, what in ((cfg.api_key_env, "API key"), (cfg.secret_env, "API secret")):
        if not environ.get(name):
            missing.append(f"environment variable {name} ({what}) is not set")
    if not live:
        missing.append("the command was not given --live")
    return missing


def _order(raw: dict[str, Any], fallback_client_id: str = "") -> Order:
    """A ccxt unified order dict as an :class:`Order` (fees as reported, summed in quote only)."""
    raw_status = str(raw.get("status") or "open")
    known = raw_status in ("open", "closed", "canceled", "rejected")
    status = cast(OrderStatus, raw_status if known else "canceled")
    fee = raw.get("fee") or {}
    return Order(
        id=str(raw.get("id") or ""),
        client_order_id=str(raw.get("clientOrderId") or fallback_client_id),
        symbol=str(raw.get("symbol")),
        side=raw.get("side") or "buy",
        type=raw.get("type") or "limit",
        amount=float(raw.get("amount") or 0.0),
        price=float(raw["price"]) if raw.get("price") else None,
        status=status,
        timestamp=int(raw.get("timestamp") or 0),
        filled=float(raw.get("filled") or 0.0),
        average=float(raw["average"]) if raw.get("average") else None,
        fee=float(fee.get("cost") or 0.0),
    )


class LiveExchange:
    """Real orders through a keyed ccxt instance; prices through a keyless one."""

    mode = "live"

    def __init__(
        self, rules: MarketRules, public: Any, private: Any, quote: str, secrets: _Secrets, retries: int = 2
    ) -> None:
        """``public``/``private``: ccxt async instances with markets loaded (only ``private`` has keys)."""
        self.rules = rules
        self.quote = quote
        self._public = public
        self._feed = LiveTickerFeed(public, retries)
        self._private = private
        self._secrets = secrets
        self._retries = retries
        self._day = -1
        self._day_start_equity = 0.0

    def __repr__(self) -> str:
        return f"LiveExchange({self.rules.exchange_id!r}, quote={self.quote!r})"

    @property
    def id(self) -> str:
        """The ccxt exchange id."""
        return self.rules.exchange_id

    @property
    def symbols(self) -> list[str]:
        """Spot markets quoted in the quote currency."""
        return [
            s
            for s in self.rules.symbols
            if self.rules.market(s).get("spot") and self.rules.market(s).get("quote") == self.quote
        ]

    def _safe(self, exc: BaseException) -> str:
        return self._secrets.redact(f"{type(exc).__name__}: {exc}")[:300]

    async def _read(self, what: str, call: Any) -> Any:
        try:
            return await with_retries(call, what, self._retries)
        except ccxt.BaseError as exc:
            raise ExchangeUnavailable(f"{what}: {self._safe(exc)}") from None

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """Public ticker (bounded retries)."""
        return await self._feed.ticker(symbol)

    async def candles(self, symbol: str, limit: int) -> list[Candle]:
        """Recent 5m candles (bounded retries)."""
        return await self._feed.candles(symbol, limit)

    async def fetch_balance(self) -> dict[str, Balance]:
        """Account balances with a non-zero total."""
        raw = await self._read("balance", self._private.fetch_balance)
        out = {}
        for cur, free in (raw.get("free") or {}).items():
            used = (raw.get("used") or {}).get(cur) or 0.0
            if (free or 0.0) + used > 0:
                out[cur] = Balance(cur, float(free or 0.0), float(used))
        return out

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders (bounded retries)."""
        raw = await self._read("open orders", lambda: self._private.fetch_open_orders(symbol))
        return [_order(o) for o in raw]

    async def fetch_positions(self) -> list[Position]:
        """Spot holdings valued at last prices (entry price unknown on spot: shown as last)."""
        out = []
        for cur, bal in (await self.fetch_balance()).items():
            sym = f"{cur}/{self.quote}"
            if cur != self.quote and sym in self.rules.symbols:
                last = (await self.fetch_ticker(sym)).last
                out.append(Position(sym, bal.total, last, last, 0.0, 0.0))
        return out

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """The order with this client order id, None if the exchange says it does not exist."""
        try:
            raw = await with_retries(
                lambda: self._private.fetch_order("", symbol, {"clientOrderId": client_order_id}),
                "order lookup",
                self._retries,
            )
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise ExchangeUnavailable(f"order lookup: {self._safe(exc)}") from None
        return _order(raw, client_order_id)

    async def create_order(self, request: OrderRequest) -> Order:
        """Send the order ONCE (never retried). OrderRejected for a definite refusal; anything
        else (network, timeouts) leaves the outcome unknown for the caller to reconcile."""
        try:
            raw = await self._private.create_order(
                request.symbol,
                request.type,
                request.side,
                request.amount,
                request.price,
                {"clientOrderId": request.client_order_id},
            )
        except ccxt.ExchangeError as exc:
            # Binance answers a reused client id with -2010 "Duplicate order sent." (InvalidOrder).
            if isinstance(exc, ccxt.DuplicateOrderId) or "duplicate order" in str(exc).lower():
                cid = request.client_order_id
                raise DuplicateClientOrderId(f"client order id {cid} already exists") from None
            raise OrderRejected(f"the exchange refused the order: {self._safe(exc)}") from None
        except ccxt.BaseError as exc:
            raise ExchangeUnavailable(f"create order: {self._safe(exc)}") from None
        return _order(raw, request.client_order_id)

    async def cancel_order(self, order_id: str, symbol: str | None = None) -> Order:
        """Cancel by exchange order id."""
        try:
            raw = await self._private.cancel_order(order_id, symbol)
        except ccxt.OrderNotFound:
            raise OrderRejected(f"no open order {order_id!r}") from None
        except ccxt.ExchangeError as exc:
            raise OrderRejected(f"the exchange refused the cancel: {self._safe(exc)}") from None
        except ccxt.BaseError as exc:
            raise ExchangeUnavailable(f"cancel order: {self._safe(exc)}") from None
        return _order(raw)

    async def account_view(self, symbols: tuple[str, ...] = ()) -> AccountView:
        """Holdings, open orders, prices and equity; the day's opening equity is the first seen."""
        balances = await self.fetch_balance()
        orders = await self.fetch_open_orders()
        held = {f"{c}/{self.quote}": b.total for c, b in balances.items() if c != self.quote}
        positions = {s: a for s, a in held.items() if s in self.rules.symbols and a > 0}
        touched = set(positions) | {o.symbol for o in orders} | set(symbols)
        prices = {s: (await self.fetch_ticker(s)).last for s in sorted(touched)}
        quote = balances.get(self.quote)
        equity = (quote.total if quote else 0.0) + sum(a * prices[s] for s, a in positions.items())
        day = self._feed.now_ms() // _DAY_MS
        if day != self._day:
            self._day, self._day_start_equity = day, equity
        return AccountView(prices, positions, orders, equity, self._day_start_equity)

    async def close(self) -> None:
        """Close both ccxt instances."""
        await self._public.close()
        await self._private.close()


async def open_exchange(
    cfg: TradingConfig,
    *,
    live: bool = False,
    environ: Mapping[str, str] | None = None,
    feed: PriceFeed | None = None,
    on_change: StateSink | None = None,
) -> PaperExchange | LiveExchange:
    """Open the exchange the config asks for.

    Paper (the default): markets from ``markets_file`` (or the exchange when it is null), prices
    from the packaged candles (``price_source: replay``) or live public tickers; ``feed``
    overrides that. Live: see the module docstring; raises LiveTradingRefused otherwise.
    """
    env = os.environ if environ is None else environ
    if live or cfg.mode == "live":
        missing = live_gate(cfg, live, env)
        if missing:
            raise LiveTradingRefused(missing)
        key, secret = env[cfg.api_key_env], env[cfg.secret_env]
        public = new_ccxt(cfg.exchange)
        rules = await MarketRules.from_exchange(public)
        private = new_ccxt(cfg.exchange, {"apiKey": key, "secret": secret})
        private.set_markets(public.markets)
        return LiveExchange(
            rules, public, private, cfg.quote_currency, _Secrets(key, secret), cfg.market_data_retries
        )
    if cfg.markets_file is not None:
        rules = MarketRules.from_file(cfg.exchange, resolve_markets_file(cfg.markets_file))
    else:
        rules = await MarketRules.from_exchange(new_ccxt(cfg.exchange))
    if feed is None:
        if cfg.price_source == "live":
            public = new_ccxt(cfg.exchange)
            public.set_markets(rules.markets)
            feed = LiveTickerFeed(public, cfg.market_data_retries)
        else:
            feed = ReplayFeed.packaged(cfg.replay.start_hours_before_end)
    return PaperExchange(rules, feed, cfg.quote_currency, cfg.starting_balances, cfg.slippage, on_change)
