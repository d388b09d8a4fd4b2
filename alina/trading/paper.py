"""The paper exchange: a simulated spot account filled against real prices.

Fill rules (docs/paper-exchange.md compares them with freqtrade's dry run):

* Amount and price are rounded with ccxt's ``amount_to_precision``/``price_to_precision`` and
  checked against the market's limits (min notional, ...) before anything else.
* **Market orders** fill at once and in full at the feed's next price (replay: the next candle's
  open; live: the ask for buys, the bid for sells) moved against the trader by the slippage
  model, and pay the **taker** fee.
* **Limit orders** that are marketable on arrival (buy limit >= next price, sell limit <= next
  price) fill at once like a market order, never beyond the limit, as **taker**. Otherwise they
  rest, reserving their funds, and fill in full **at the limit price** as **maker** on the first
  later bar whose low (buy) or high (sell) reaches the limit.
* Fees are rate x notional in the quote currency. Spot only, long only: a sell needs the coins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from alina.trading._paper_book import _EPS, PaperBook, _f
from alina.trading.config import SlippageConfig
from alina.trading.errors import DuplicateClientOrderId, ExchangeUnavailable, OrderRejected
from alina.trading.feeds import PriceFeed, ReplayFeed
from alina.trading.market_data import Candle
from alina.trading.markets import MarketRules
from alina.trading.orders import AccountView, Balance, Fill, Order, OrderRequest, Position, Ticker

__all__ = ["PaperExchange", "slippage_bps"]

logger = logging.getLogger(__name__)

_DAY_MS = 86_400_000
StateSink = Callable[[dict[str, Any]], Awaitable[None]]


def slippage_bps(cfg: SlippageConfig, amount: float, volume: float) -> float:
    """Slippage in basis points: ``min(max, base + impact x amount / volume)``; max if no volume."""
    if not (volume > 0 and math.isfinite(volume)):
        return cfg.max_bps
    return min(cfg.max_bps, cfg.base_bps + cfg.impact_bps * amount / volume)


class PaperExchange(PaperBook):
    """Simulated balances, orders, fills and positions; see the module docstring for the rules."""

    mode = "paper"

    def __init__(
        self,
        rules: MarketRules,
        feed: PriceFeed,
        quote: str = "USDT",
        starting_balances: dict[str, float] | None = None,
        slippage: SlippageConfig | None = None,
        on_change: StateSink | None = None,
    ) -> None:
        """An account holding ``starting_balances`` (default 10,000 of ``quote``)."""
        self.rules = rules
        self.feed = feed
        self.quote = quote
        self.slippage = slippage or SlippageConfig()
        self.on_change = on_change
        start = dict(starting_balances if starting_balances is not None else {quote: 10_000.0})
        self._free: dict[str, float] = {k: float(v) for k, v in start.items()}
        self._used: dict[str, float] = {}
        self._orders: dict[str, Order] = {}
        self._by_client: dict[str, str] = {}
        self._reserved: dict[str, float] = {}  # order id -> funds still reserved
        self._checked: dict[str, int] = {}  # order id -> last bar time checked
        self._fills: list[Fill] = []
        self._entry: dict[str, float] = {}  # symbol -> average entry price
        self._realized: dict[str, float] = {}
        self._fees_paid = 0.0
        self._seq = 0
        self._start_equity: float | None = None
        self._day = -1
        self._day_start_equity = 0.0
        self._seed_entries = {k for k, v in start.items() if k != quote and v > 0}
        self._symbols: list[str] | None = None

    # ------------------------------------------------------------------ queries

    @property
    def id(self) -> str:
        """``paper:<exchange id>``."""
        return f"paper:{self.rules.exchange_id}"

    def __repr__(self) -> str:
        return f"PaperExchange({self.rules.exchange_id!r}, feed={self.feed.source!r}, quote={self.quote!r})"

    @property
    def symbols(self) -> list[str]:
        """Spot markets quoted in ``quote`` that the feed can price."""
        if self._symbols is None:
            feed = set(self.feed.symbols())
            self._symbols = [
                s
                for s in self.rules.symbols
                if s in feed
                and self.rules.market(s).get("spot")
                and self.rules.market(s).get("quote") == self.quote
            ]
        return list(self._symbols)

    @property
    def fills(self) -> list[Fill]:
        """Every fill so far, oldest first."""
        return list(self._fills)

    @property
    def fees_paid(self) -> float:
        """Total fees paid, quote currency."""
        return self._fees_paid

    async def load_markets(self) -> None:
        """Nothing to load: the rules were given at construction."""

    async def fetch_ticker(self, symbol: str) -> Ticker:
        """Current prices from the feed (resting orders are processed first)."""
        self._tradeable(symbol)
        await self.sync()
        return await self.feed.ticker(symbol)

    async def fetch_balance(self) -> dict[str, Balance]:
        """Balances of every currency ever held."""
        await self.sync()
        names = sorted(set(self._free) | set(self._used))
        return {
            c: Balance(c, max(0.0, self._free.get(c, 0.0)), max(0.0, self._used.get(c, 0.0))) for c in names
        }

    async def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Resting orders, oldest first."""
        await self.sync()
        return [o for o in self._orders.values() if o.status == "open" and symbol in (None, o.symbol)]

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        """The order with this client order id, or None if the exchange never received it."""
        await self.sync()
        oid = self._by_client.get(client_order_id)
        return self._orders[oid] if oid is not None else None

    async def fetch_positions(self) -> list[Position]:
        """Non-zero holdings valued at the last price."""
        await self.sync()
        out = []
        for base in sorted(set(self._free) | set(self._used)):
            amount = self._total(base)
            symbol = f"{base}/{self.quote}"
            if base == self.quote or amount <= _EPS or symbol not in self.feed.symbols():
                continue
            last = (await self.feed.ticker(symbol)).last
            entry = self._entry.get(symbol, last)
            out.append(
                Position(
                    symbol, amount, entry, last, (last - entry) * amount, self._realized.get(symbol, 0.0)
                )
            )
        return out

    async def equity(self) -> float:
        """Quote balance plus every holding at its last price."""
        total = self._total(self.quote)
        for base in set(self._free) | set(self._used):
            symbol = f"{base}/{self.quote}"
            if base != self.quote and self._total(base) > 0 and symbol in self.feed.symbols():
                total += self._total(base) * (await self.feed.ticker(symbol)).last
        return total

    async def account_view(self, symbols: tuple[str, ...] = ()) -> AccountView:
        """Snapshot for the risk guard: holdings, open orders, and last prices of every symbol
        held or with open orders, plus ``symbols``."""
        await self.sync()
        tradeable = set(self.symbols)
        open_orders = [o for o in self._orders.values() if o.status == "open"]
        held = {f"{c}/{self.quote}": self._total(c) for c in set(self._free) | set(self._used)}
        positions = {s: a for s, a in held.items() if s in tradeable and a > _EPS}
        touched = set(positions) | {o.symbol for o in open_orders} | (set(symbols) & tradeable)
        return AccountView(
            last_prices={s: (await self.feed.ticker(s)).last for s in sorted(touched)},
            positions=positions,
            open_orders=open_orders,
            equity=await self.equity(),
            day_start_equity=self._day_start_equity,
        )

    async def candles(self, symbol: str, limit: int) -> list[Candle]:
        """The last ``limit`` 5m candles up to the feed's now (no look-ahead)."""
        return await self.feed.candles(symbol, limit)

    async def pnl(self) -> dict[str, float]:
        """Equity, its change since the start and today, realized/unrealized PnL and fees."""
        await self.sync()
        eq = await self.equity()
        unreal = sum(p.unrealized_pnl for p in await self.fetch_positions())
        return {
            "equity": eq,
            "start_equity": self._start_equity or eq,
            "total_pnl": eq - (self._start_equity or eq),
            "day_pnl": eq - self._day_start_equity,
            "realized_pnl": sum(self._realized.values()),
            "unrealized_pnl": unreal,
            "fees_paid": self._fees_paid,
        }

    # ------------------------------------------------------------------ orders

    async def create_order(self, request: OrderRequest) -> Order:
        """Place an order (rules in the module docstring). Raises OrderRejected (also when a
        market order has no next price) or DuplicateClientOrderId."""
        await self.sync()
        if request.client_order_id in self._by_client:
            raise DuplicateClientOrderId(f"client order id {request.client_order_id} was already used")
        self._tradeable(request.symbol)
        if request.type == "limit" and request.price is None:
            raise OrderRejected("a limit order needs a price")
        req = self.rules.normalize(request)
        last = (await self.feed.ticker(req.symbol)).last
        self.rules.check_limits(req, last)
        base = req.symbol.split("/")[0]
        max_fee = max(self.rules.fee_rate(req.symbol, "taker"), self.rules.fee_rate(req.symbol, "maker"))
        try:
            next_price, volume = await self.feed.next_trade(req.symbol, req.side)
        except ExchangeUnavailable as exc:
            if req.type == "market":
                raise OrderRejected(str(exc)) from None
            next_price, volume = math.nan, 0.0
        fill_price = self._slipped(req, next_price, volume) if math.isfinite(next_price) else math.nan

        if req.type == "market":
            limit_price = math.nan
            self._check_funds(req, base, fill_price * (1 + max_fee))
        else:
            if req.price is None:
                raise OrderRejected(f"a {req.type} order needs a price (got None)")
            limit_price = req.price
            self._check_funds(req, base, limit_price * (1 + max_fee))
        order = self._new_order(req)
        if req.type == "limit":
            reserve = req.amount * limit_price * (1 + max_fee) if req.side == "buy" else req.amount
            cur = self.quote if req.side == "buy" else base
            self._move(cur, reserve)
            self._reserved[order.id] = reserve
            self._checked[order.id] = self.feed.now_ms()
            marketable = math.isfinite(next_price) and (
                next_price <= limit_price if req.side == "buy" else next_price >= limit_price
            )
            if marketable:
                capped = min(fill_price, limit_price) if req.side == "buy" else max(fill_price, limit_price)
                self._execute(order, capped, "taker")
        else:
            self._execute(order, fill_price, "taker")
        logger.info(
            "paper order %s %s %s %s %s -> %s",
            order.client_order_id,
            req.side,
            req.type,
            _f(req.amount),
            req.symbol,
            order.status,
        )
        await self._changed()
        return order

    async def cancel_order(self, order_id: str, symbol: str | None = None) -> Order:
        """Cancel a resting order (by exchange id or client order id) and release its funds."""
        await self.sync()
        oid = order_id if order_id in self._orders else self._by_client.get(order_id)
        if oid is None:
            raise OrderRejected(f"no order {order_id!r}")
        order = self._orders[oid]
        if order.status != "open":
            raise OrderRejected(f"order {order_id} is already {order.status}")
        self._release(order)
        order.status = "canceled"
        await self._changed()
        return order

    # ------------------------------------------------------------------ time

    async def advance(self, steps: int = 1) -> int:
        """Replay only: move the clock ``steps`` candles and fill what the new candles reach."""
        if not isinstance(self.feed, ReplayFeed):
            raise TypeError("advance() needs a replay feed; a live feed moves with the wall clock")
        taken = self.feed.advance(steps)
        await self.sync()
        await self._changed()
        return taken

    async def sync(self) -> None:
        """Fill resting orders against the bars seen since each was last checked; roll the day."""
        filled = False
        for order in [o for o in self._orders.values() if o.status == "open"]:
            if order.price is None:
                raise RuntimeError(f"resting order {order.id} has no limit price")
            for bar in await self.feed.bars_after(order.symbol, self._checked[order.id]):
                self._checked[order.id] = bar.ts_ms
                crossed = bar.low <= order.price if order.side == "buy" else bar.high >= order.price
                if crossed:
                    self._execute(order, order.price, "maker", bar.ts_ms)
                    filled = True
                    break
        await self._roll_day()
        if filled:
            await self._changed()

    async def _roll_day(self) -> None:
        day = self.feed.now_ms() // _DAY_MS
        if day != self._day:
            eq = await self.equity()
            if self._start_equity is None:
                self._start_equity = eq
                for base in self._seed_entries:
                    sym = f"{base}/{self.quote}"
                    if sym in self.feed.symbols():
                        self._entry.setdefault(sym, (await self.feed.ticker(sym)).last)
            self._day, self._day_start_equity = day, eq

    # ------------------------------------------------------------------ internals

    def _tradeable(self, symbol: str) -> None:
        if symbol not in self.symbols:
            raise OrderRejected(
                f"{symbol!r} cannot be paper-traded here; tradeable: {', '.join(self.symbols) or 'none'}"
            )

    def _slipped(self, req: OrderRequest, price: float, volume: float) -> float:
        bps = slippage_bps(self.slippage, req.amount, volume)
        moved = price * (1 + bps / 10_000) if req.side == "buy" else price * (1 - bps / 10_000)
        return self.rules.price_to_precision(req.symbol, moved)

    async def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            await self.on_change(self.to_state())
        except Exception as exc:  # the order stands; the snapshot is retried on the next change
            logger.warning("could not save the paper account snapshot: %s", type(exc).__name__)

    async def close(self) -> None:
        """Release the market rules' ccxt instance."""
        await self.rules.close()
