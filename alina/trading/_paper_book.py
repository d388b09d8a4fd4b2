"""The paper account's books: balances, reservations, orders, fills, PnL and their snapshot.

:class:`PaperBook` is the base of :class:`~alina.trading.paper.PaperExchange`: it moves money
between the free and used balances, records orders and fills (one fill per order, in full), keeps
the average entry and realized PnL per symbol, and saves/restores the whole account as JSON-ready
state. The exchange itself (prices, slippage, when an order fills) lives in ``trading/paper.py``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from alina.trading.errors import OrderRejected
from alina.trading.feeds import PriceFeed, ReplayFeed
from alina.trading.markets import MarketRules
from alina.trading.orders import Fill, Order, OrderRequest

__all__ = ["PaperBook"]

_EPS = 1e-9


def _f(x: float) -> str:
    return f"{x:.10g}"


class PaperBook:
    """Balances, orders, fills and PnL of a paper account; the state is set up by the subclass."""

    rules: MarketRules
    feed: PriceFeed
    quote: str
    _free: dict[str, float]
    _used: dict[str, float]
    _orders: dict[str, Order]
    _by_client: dict[str, str]
    _reserved: dict[str, float]
    _checked: dict[str, int]
    _fills: list[Fill]
    _entry: dict[str, float]
    _realized: dict[str, float]
    _fees_paid: float
    _seq: int
    _start_equity: float | None
    _day: int
    _day_start_equity: float
    _seed_entries: set[str]

    # ------------------------------------------------------------------ books

    def _total(self, currency: str) -> float:
        return self._free.get(currency, 0.0) + self._used.get(currency, 0.0)

    def _check_funds(self, req: OrderRequest, base: str, unit_cost: float) -> None:
        if req.side == "buy":
            need, have, cur = req.amount * unit_cost, self._free.get(self.quote, 0.0), self.quote
        else:
            need, have, cur = req.amount, self._free.get(base, 0.0), base
        if need > have + _EPS:
            raise OrderRejected(
                f"insufficient {cur}: the order needs {_f(need)} (fees included), free {_f(have)}"
            )

    def _move(self, currency: str, amount: float) -> None:
        """Reserve ``amount`` of ``currency`` (free -> used)."""
        self._free[currency] = self._free.get(currency, 0.0) - amount
        self._used[currency] = self._used.get(currency, 0.0) + amount

    def _release(self, order: Order) -> None:
        reserve = self._reserved.pop(order.id, 0.0)
        cur = self.quote if order.side == "buy" else order.symbol.split("/")[0]
        self._move(cur, -reserve)
        self._clean(cur)

    def _clean(self, currency: str) -> None:
        for book in (self._free, self._used):
            if abs(book.get(currency, 0.0)) < _EPS:
                book[currency] = 0.0

    def _new_order(self, req: OrderRequest) -> Order:
        self._seq += 1
        order = Order(
            id=f"paper-{self._seq}",
            client_order_id=req.client_order_id,
            symbol=req.symbol,
            side=req.side,
            type=req.type,
            amount=req.amount,
            price=req.price,
            status="open",
            timestamp=self.feed.now_ms(),
        )
        self._orders[order.id] = order
        self._by_client[order.client_order_id] = order.id
        return order

    def _execute(self, order: Order, price: float, liquidity: str, ts: int | None = None) -> None:
        """Fill the whole remaining amount of ``order`` at ``price``; move money; update PnL."""
        amount, base = order.remaining, order.symbol.split("/")[0]
        rate = self.rules.fee_rate(order.symbol, liquidity)
        notional = amount * price
        fee = notional * rate
        if order.id in self._reserved:
            self._release(order)
        if order.side == "buy":
            self._free[self.quote] = self._free.get(self.quote, 0.0) - notional - fee
            held = self._total(base)
            entry = self._entry.get(order.symbol, price)
            self._entry[order.symbol] = (held * entry + amount * price) / (held + amount)
            self._free[base] = self._free.get(base, 0.0) + amount
        else:
            self._free[base] = self._free.get(base, 0.0) - amount
            self._free[self.quote] = self._free.get(self.quote, 0.0) + notional - fee
            entry = self._entry.get(order.symbol, price)
            self._realized[order.symbol] = self._realized.get(order.symbol, 0.0) + (price - entry) * amount
            if self._total(base) <= _EPS:
                self._entry.pop(order.symbol, None)
        self._clean(base)
        self._clean(self.quote)
        self._fees_paid += fee
        order.average = price  # orders fill in one piece
        order.filled = order.amount
        order.fee += fee
        order.status = "closed"
        self._fills.append(
            Fill(
                order.id,
                order.client_order_id,
                order.symbol,
                order.side,
                amount,
                price,
                fee,
                rate,
                "maker" if liquidity == "maker" else "taker",
                ts if ts is not None else self.feed.now_ms(),
            )
        )

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """JSON-ready snapshot of the whole account (restore with :meth:`load_state`)."""
        return {
            "version": 1,
            "quote": self.quote,
            "clock_ms": self.feed.now_ms(),
            "free": self._free,
            "used": self._used,
            "orders": [o.to_dict() for o in self._orders.values()],
            "reserved": self._reserved,
            "checked": self._checked,
            "fills": [asdict(f) for f in self._fills],
            "entry": self._entry,
            "realized": self._realized,
            "fees_paid": self._fees_paid,
            "seq": self._seq,
            "start_equity": self._start_equity,
            "day": self._day,
            "day_start_equity": self._day_start_equity,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`to_state` snapshot (a replay clock is moved to the saved time)."""
        if state.get("version") != 1 or state.get("quote") != self.quote:
            raise ValueError("paper snapshot has another version or quote currency")
        if isinstance(self.feed, ReplayFeed):
            self.feed.seek(int(state["clock_ms"]))
        self._free = {k: float(v) for k, v in state["free"].items()}
        self._used = {k: float(v) for k, v in state["used"].items()}
        self._orders = {o["id"]: Order(**o) for o in state["orders"]}
        self._by_client = {o.client_order_id: o.id for o in self._orders.values()}
        self._reserved = {k: float(v) for k, v in state["reserved"].items()}
        self._checked = {k: int(v) for k, v in state["checked"].items()}
        self._fills = [Fill(**f) for f in state["fills"]]
        self._entry = {k: float(v) for k, v in state["entry"].items()}
        self._realized = {k: float(v) for k, v in state["realized"].items()}
        self._fees_paid = float(state["fees_paid"])
        self._seq = int(state["seq"])
        self._start_equity = state["start_equity"]
        self._day = int(state["day"])
        self._day_start_equity = float(state["day_start_equity"])
        self._seed_entries = set()
