"""Trader skills over the trading desk: prices, account, orders, market regime.

Plain async functions with flat primitive arguments and one short string result each. Handled
failures (risk rejections, invalid orders, safe mode, unknown symbols) return a string starting
with ``error:`` instead of raising. Orders go through :class:`~alina.trading.desk.TradingDesk`,
so every placement passes the risk guard and is recorded as an intent before it is sent.

Wiring: the application that owns the desk (:class:`alina.Alina`) hands it down with
:func:`~alina.skills.bindings.bind_skills`; every call inside its block uses that desk (a
script or a test with a desk of its own uses :func:`~alina.skills.bindings.bind_desk`). There
is no process-wide desk: called outside any binding, a skill answers ``error: no trading
desk ...`` and touches nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal

from prometheus_client import Counter

from alina.monitoring.metrics import REGISTRY
from alina.skills._contract import ToolOutput
from alina.skills.bindings import current_bindings
from alina.skills.context import current_run_context
from alina.skills.task_args import task_arguments
from alina.trading.desk import TradingDesk
from alina.trading.errors import OrderOutcomeUnknown, RiskRejection, TradingError
from alina.trading.mandate import packaged_symbols
from alina.trading.market_data import UnknownSymbolError, format_price
from alina.trading.orders import Order
from alina.trading.regime import market_regime as _regime

__all__ = [
    "SIDE_EFFECT_SKILLS",
    "TRADING_SKILLS",
    "NoDeskError",
    "balance",
    "bound_desk",
    "cancel_order",
    "market_regime",
    "open_orders",
    "place_order",
    "positions",
    "register",
    "ticker",
]

ERROR = "error:"

ORDERS_REFUSED = Counter(
    "alina_order_mandate_refusals_total",
    "Order skill calls refused before the desk: not asked for by the user's request, or safe mode.",
    ["skill"],
    registry=REGISTRY,
)


class NoDeskError(TradingError):
    """A trading skill was called outside any application or binding that owns a desk."""


async def bound_desk() -> TradingDesk:
    """The trading desk of the application in use (:mod:`alina.skills.bindings`).

    Raises:
        NoDeskError: nothing bound a desk (the skills answer it as an ``error:`` line).
    """
    bound = current_bindings()
    if bound is None or bound.desk is None:
        raise NoDeskError(
            "no trading desk: call trading skills inside an alina.Alina application "
            "(app.bound()) or bind one with alina.skills.bindings.bind_desk(desk)"
        )
    return await bound.desk()


# The pairs of the packaged markets file (what the desk can trade) as an enum in every skill's
# schema: a grammar-constrained small model can then only name a real pair (a free-text symbol
# let it ask ticker for "BEGIN_TITLE"). The default pair comes first; open_orders also takes ""
# (all pairs).
_DEFAULT_SYMBOL = "BTC/USDT"
_SYMBOLS = (_DEFAULT_SYMBOL, *(s for s in packaged_symbols() if s != _DEFAULT_SYMBOL))
Symbol = Literal[_SYMBOLS]  # type: ignore[valid-type]
SymbolOrAll = Literal[("", *_SYMBOLS)]  # type: ignore[valid-type]


def _when(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts_ms / 1000)) + " UTC"


def _num(x: float) -> str:
    return f"{x:.8g}"


def _describe(o: Order) -> str:
    at = f" @ {format_price(o.price)}" if o.price is not None else ""
    return f"{o.side} {o.type} {_num(o.amount)} {o.symbol}{at}"


def _error(exc: Exception) -> str:
    if isinstance(exc, RiskRejection):
        return f"{ERROR} refused by the risk guard ({exc.rule}): {exc.reason}"
    if isinstance(exc, UnknownSymbolError):
        return f"{ERROR} unknown symbol {exc.symbol!r}; available: {', '.join(exc.available)}"
    if isinstance(exc, OrderOutcomeUnknown):
        return f"{ERROR} {exc} Do not place it again; check open_orders."
    return f"{ERROR} {exc}"


async def ticker(symbol: Symbol = _DEFAULT_SYMBOL) -> str:
    """Get the current price of a trading pair from the trading desk (paper replay or live exchange).

    In a run, the pair the user's request names wins over ``symbol`` (:mod:`alina.skills.task_args`).

    Args:
        symbol: Trading pair, e.g. "BTC/USDT".
    """
    symbol = task_arguments().symbol or symbol
    try:
        t = await (await bound_desk()).ticker(symbol)
    except (TradingError, UnknownSymbolError) as exc:
        return _error(exc)
    book = f", bid {format_price(t.bid)} ask {format_price(t.ask)}" if t.bid and t.ask else ""
    src = "5m candle close, replayed historical data" if t.source == "replay" else "live exchange ticker"
    return ToolOutput(
        f"{t.symbol} last {format_price(t.last)}{book} ({src}, {_when(t.timestamp)})",
        {"symbol": t.symbol, "last": t.last, "bid": t.bid, "ask": t.ask, "source": t.source},
    )


async def balance() -> str:
    """Show the trading account's balances (free and reserved) and its equity in the quote currency."""
    try:
        desk = await bound_desk()
        bals = await desk.balances()
        pnl = await desk.pnl()
    except TradingError as exc:
        return _error(exc)
    parts = [
        f"{c} free {_num(b.free)}" + (f" reserved {_num(b.used)}" if b.used else "") for c, b in bals.items()
    ]
    extra = f", PnL {pnl['total_pnl']:+,.2f}" if "total_pnl" in pnl else ""
    return f"{'; '.join(parts) or 'no balances'} | equity {pnl['equity']:,.2f}{extra} ({desk.exchange.mode})"


async def positions() -> str:
    """List open positions with entry price, last price and profit or loss."""
    try:
        held = await (await bound_desk()).positions()
    except TradingError as exc:
        return _error(exc)
    if not held:
        return "no open positions"
    return "; ".join(
        f"{p.symbol} {_num(p.amount)} entry {format_price(p.entry_price)} last {format_price(p.last_price)} "
        f"unrealized {p.unrealized_pnl:+,.2f} realized {p.realized_pnl:+,.2f}"
        for p in held
    )


async def open_orders(symbol: SymbolOrAll = "") -> str:
    """List resting (unfilled) orders.

    In a run, the request decides the filter: the pair it names, or all pairs when it names
    none (a small model's guess must not hide orders the user asked to see).

    Args:
        symbol: Only this trading pair, e.g. "BTC/USDT"; empty for all pairs.
    """
    if current_run_context() is not None:
        symbol = task_arguments().symbol or ""
    try:
        orders = await (await bound_desk()).open_orders(symbol or None)
    except (TradingError, UnknownSymbolError) as exc:
        return _error(exc)
    if not orders:
        return "no open orders"
    return "; ".join(f"{o.id}: {_describe(o)}, filled {_num(o.filled)}" for o in orders[:10]) + (
        f"; and {len(orders) - 10} more" if len(orders) > 10 else ""
    )


async def place_order(
    symbol: Symbol,
    side: Literal["buy", "sell"],
    amount: float,
    order_type: Literal["market", "limit"] = "market",
    price: float = 0.0,
) -> str:
    """Place a buy or sell order; it passes the risk guard and is recorded before it is sent.

    Args:
        symbol: Trading pair, e.g. "BTC/USDT".
        side: "buy" or "sell".
        amount: Amount of the base currency, e.g. 0.01 (BTC for BTC/USDT).
        order_type: "market" (fill now) or "limit" (rest at price).
        price: Limit price in the quote currency; ignored for market orders.
    """
    ctx = current_run_context()
    try:
        desk = await bound_desk()
        request_id = None
        if ctx is not None:
            # The user's request names exactly one order of this side, pair and amount: that is the
            # order (a small model garbles pairs and amounts); a different side is still refused.
            asked = [a for a in ctx.mandate.asks if a.side == side]
            if len(asked) == 1 and asked[0].symbol is not None and asked[0].amount is not None:
                symbol, amount = asked[0].symbol, asked[0].amount
            refusal = ctx.side_effect_refusal() or ctx.mandate.check_order(side, desk.resolve(symbol), amount)
            if refusal is not None:
                ORDERS_REFUSED.labels(skill="place_order").inc()
                return f"{ERROR} order refused: {refusal}. Nothing was placed."
            request_id = ctx.request_id("place")
        placed = await desk.place_order(
            symbol, side, order_type, amount, price if order_type == "limit" else None, request_id=request_id
        )
    except (TradingError, UnknownSymbolError) as exc:
        return _error(exc)
    o = placed.order
    if o is None:
        return f"placed order {placed.client_order_id} (details not available yet)"
    if o.status == "closed":
        fill = f"filled {_num(o.filled)} @ {format_price(o.average or 0.0)}, fee {o.fee:.4f}"
    else:
        fill = f"{o.status}, filled {_num(o.filled)}"
    return f"placed {_describe(o)}: {fill} (order {o.id})"


async def cancel_order(order_id: str) -> str:
    """Cancel a resting order.

    In a run, the order id the user's request names wins over ``order_id``
    (:mod:`alina.skills.task_args`): the user asked to cancel that order, not one the model made up.

    Args:
        order_id: The order id shown by open_orders, e.g. "paper-3".
    """
    order_id = task_arguments().order_id or order_id
    ctx = current_run_context()
    if ctx is not None:
        refusal = ctx.side_effect_refusal() or ctx.mandate.check_cancel()
        if refusal is not None:
            ORDERS_REFUSED.labels(skill="cancel_order").inc()
            return f"{ERROR} cancel refused: {refusal}. Nothing was changed."
        ctx.request_id("cancel")  # keeps the numbering of the turn's side-effect calls stable
    try:
        o = await (await bound_desk()).cancel_order(order_id, idempotent=ctx is not None)
    except (TradingError, UnknownSymbolError) as exc:
        return _error(exc)
    return f"canceled order {o.id} ({_describe(o)}, filled {_num(o.filled)})"


async def market_regime(symbol: Symbol = _DEFAULT_SYMBOL) -> str:
    """Summarise the market regime of a pair: trend, volatility versus its recent past, range position.

    In a run, the pair the user's request names wins over ``symbol`` (:mod:`alina.skills.task_args`).

    Args:
        symbol: Trading pair, e.g. "BTC/USDT".
    """
    symbol = task_arguments().symbol or symbol
    try:
        desk = await bound_desk()
        sym = desk.resolve(symbol)
        candles = await desk.candles(sym)
        regime = _regime(candles, sym)
    except (TradingError, UnknownSymbolError, ValueError) as exc:
        return _error(exc)
    return ToolOutput(regime.to_text(), dataclasses.asdict(regime))


TRADING_SKILLS: list[Callable[..., Any]] = [
    ticker,
    balance,
    positions,
    open_orders,
    place_order,
    cancel_order,
    market_regime,
]
"""The trader's desk skills (``candle_summary`` stays in :mod:`alina.skills.builtin`)."""

SIDE_EFFECT_SKILLS = frozenset({"place_order", "cancel_order"})


def register(skills: Any) -> None:
    """Plugin hook: declare every trading skill for the trader (orders have side effects)."""
    for func in TRADING_SKILLS:
        skills.add(func, agents=["trader"], side_effects=func.__name__ in SIDE_EFFECT_SKILLS, timeout_s=30)
