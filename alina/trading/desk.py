"""The trading desk: the one path every order takes, paper or live.

``place_order``: safe mode? -> open intents reconciled? -> round to market precision -> market
limits -> risk guard -> **intent written to the store** -> sent ONCE -> intent updated. An order
whose reply is lost is never re-sent: its intent stays open and is reconciled by client order id
(at once, and on every start). While an intent stays unresolved, new orders wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import Counter

from alina.monitoring.metrics import REGISTRY, observe_paper, safe_label
from alina.trading.config import TradingConfig
from alina.trading.errors import (
    DuplicateClientOrderId,
    LiveTradingRefused,
    OrderOutcomeUnknown,
    OrderRejected,
    RiskRejection,
    TradingError,
    UnresolvedIntents,
)
from alina.trading.exchange import Exchange, live_gate, open_exchange
from alina.trading.feeds import PriceFeed
from alina.trading.intents import DuplicateRequest, Intent, IntentStore, MemoryIntentStore, PgIntentStore
from alina.trading.market_data import Candle, normalize_symbol
from alina.trading.orders import Balance, Order, OrderRequest, Position, Ticker
from alina.trading.paper import PaperExchange
from alina.trading.risk import RiskGuard

__all__ = ["ORDERS", "RISK_REJECTIONS", "Placement", "TradingDesk", "open_desk"]

logger = logging.getLogger(__name__)

ORDERS = Counter(
    "alina_orders_total",
    "Order placements by mode and outcome: placed|duplicate|rejected|risk_rejected|unknown|refused.",
    ["mode", "outcome"],
    registry=REGISTRY,
)
RISK_REJECTIONS = Counter(
    "alina_risk_rejections_total", "Orders refused by the risk guard, by rule.", ["rule"], registry=REGISTRY
)


@dataclass(frozen=True)
class Placement:
    """Result of :meth:`TradingDesk.place_order` (an unknown outcome raises instead)."""

    client_order_id: str
    status: Literal["placed"]
    order: Order | None
    """The order as the exchange reported it (None only if the exchange's lookup failed)."""
    duplicate: bool = False
    """True when ``request_id`` matched an earlier intent and nothing new was sent."""


class TradingDesk:
    """Exchange + risk guard + intent store, serialised by one lock per desk."""

    def __init__(
        self,
        exchange: Exchange,
        guard: RiskGuard,
        intents: IntentStore,
        *,
        mode_source: Callable[[], str] = lambda: "normal",
    ) -> None:
        """``mode_source`` returns the system mode; ``"safe"`` and ``"halt"`` refuse placement and
        cancels (the kill switch's :meth:`cancel_all` still cancels)."""
        self.exchange = exchange
        self.guard = guard
        self.intents = intents
        self.mode_source = mode_source
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TradingDesk(exchange={self.exchange!r}, mode={self.exchange.mode!r})"

    # ------------------------------------------------------------------ reads

    def resolve(self, symbol: str) -> str:
        """Lenient symbol input ("btc", "BTCUSDT") -> a tradeable symbol (UnknownSymbolError)."""
        return normalize_symbol(symbol, self.exchange.symbols)

    async def ticker(self, symbol: str) -> Ticker:
        """Current prices of ``symbol``."""
        return await self.exchange.fetch_ticker(self.resolve(symbol))

    async def balances(self) -> dict[str, Balance]:
        """Account balances."""
        return await self.exchange.fetch_balance()

    async def positions(self) -> list[Position]:
        """Holdings with PnL."""
        return await self.exchange.fetch_positions()

    async def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Resting orders (all symbols when ``symbol`` is None)."""
        return await self.exchange.fetch_open_orders(self.resolve(symbol) if symbol else None)

    async def candles(self, symbol: str, limit: int = 2016) -> list[Candle]:
        """Recent 5m candles up to now (the replay clock in paper-replay mode)."""
        return await self.exchange.candles(self.resolve(symbol), limit)

    # ------------------------------------------------------------------ reconcile

    async def start(self) -> dict[str, int]:
        """Reconcile every open intent against the exchange; returns counts by outcome."""
        async with self._lock:
            return await self._reconcile_all()

    async def _reconcile_all(self) -> dict[str, int]:
        counts = {"placed": 0, "not_placed": 0, "still_open": 0}
        for intent in await self.intents.open_intents():
            counts[(await self._reconcile(intent))[0]] += 1
        if any(counts.values()):
            logger.info("reconciled order intents: %s", counts)
        return counts

    async def _reconcile(self, intent: Intent) -> tuple[str, Order | None]:
        """Ask the exchange for the intent's client order id: placed, not_placed or still_open."""
        try:
            order = await self.exchange.fetch_order_by_client_id(intent.client_order_id, intent.symbol)
        except TradingError as exc:
            logger.warning("cannot reconcile %s yet: %s", intent.client_order_id, exc)
            return "still_open", None
        if order is None:
            await self.intents.update(intent.client_order_id, "not_placed", error="not found at the exchange")
            return "not_placed", None
        await self.intents.update(intent.client_order_id, "placed", order)
        return "placed", order

    # ------------------------------------------------------------------ orders

    async def place_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: float,
        price: float | None = None,
        *,
        request_id: str | None = None,
    ) -> Placement:
        """Place one order through risk guard and intent (see the module docstring).

        Raises RiskRejection (also in safe mode), OrderRejected, UnresolvedIntents, or
        OrderOutcomeUnknown (the order may exist; it was not re-sent). ``request_id`` makes the
        call idempotent: a second call with it returns the first order instead of sending.
        """
        mode = self.exchange.mode
        async with self._lock:
            try:
                placement = await self._place(symbol, side, type, amount, price, request_id)
            except RiskRejection as exc:
                ORDERS.labels(mode=mode, outcome="risk_rejected").inc()
                RISK_REJECTIONS.labels(rule=safe_label(exc.rule)).inc()
                raise
            except OrderOutcomeUnknown:
                ORDERS.labels(mode=mode, outcome="unknown").inc()
                raise
            except UnresolvedIntents:
                ORDERS.labels(mode=mode, outcome="refused").inc()
                raise
            except TradingError:
                ORDERS.labels(mode=mode, outcome="rejected").inc()
                raise
            ORDERS.labels(mode=mode, outcome="duplicate" if placement.duplicate else "placed").inc()
            return placement

    async def _place(
        self, symbol: str, side: str, type: str, amount: float, price: float | None, request_id: str | None
    ) -> Placement:
        if self._blocked():
            raise RiskRejection(
                f"the system is in {self.mode_source()} mode: no order placement (read and report only)",
                "safe_mode",
            )
        if request_id is not None:
            earlier = await self.intents.by_request(request_id)
            done = await self._existing(earlier) if earlier is not None else None
            if done is not None:
                return done
        if await self.intents.open_intents():
            await self._reconcile_all()
            still = await self.intents.open_intents()
            if still:
                raise UnresolvedIntents([i.client_order_id for i in still])
        req = self._validated_request(symbol, side, type, amount, price)
        req = self.exchange.rules.normalize(req)
        view = await self.exchange.account_view((req.symbol,))
        last = view.last_prices.get(req.symbol) or (await self.exchange.fetch_ticker(req.symbol)).last
        self.exchange.rules.check_limits(req, last)
        self.guard.check(req, view)
        intent = Intent.for_request(req, self.exchange.mode, self.exchange.id, request_id)
        try:
            await self.intents.record(intent)  # durable BEFORE anything is sent
        except DuplicateRequest as dup:  # another process got there first
            done = await self._existing(dup.existing)
            if done is None:
                raise OrderOutcomeUnknown(
                    dup.existing.client_order_id, "a concurrent attempt failed"
                ) from None
            return done
        return await self._send(req)

    def _validated_request(
        self, symbol: str, side: str, type: str, amount: float, price: float | None
    ) -> OrderRequest:
        if side not in ("buy", "sell"):
            raise OrderRejected(f"side must be 'buy' or 'sell' (got {side!r})")
        if type not in ("market", "limit"):
            raise OrderRejected(f"type must be 'market' or 'limit' (got {type!r})")
        if not (isinstance(amount, (int, float)) and amount > 0):
            raise OrderRejected(f"amount must be a positive number (got {amount!r})")
        if type == "limit" and not (isinstance(price, (int, float)) and price > 0):
            raise OrderRejected(f"a limit order needs a positive price (got {price!r})")
        if type == "market":
            price = None
        try:
            sym = self.resolve(symbol)
        except LookupError as exc:
            raise OrderRejected(str(exc)) from None
        return OrderRequest(sym, side, type, float(amount), float(price) if price else None)  # type: ignore[arg-type]

    async def _send(self, req: OrderRequest) -> Placement:
        cid = req.client_order_id
        try:
            order = await self.exchange.create_order(req)
        except DuplicateClientOrderId:
            pass  # it exists already: fall through to reconciliation
        except OrderRejected as exc:
            await self.intents.update(cid, "rejected", error=exc.reason)
            raise
        except Exception as exc:  # reply lost / network / anything: outcome unknown, never re-sent
            # Only our own (redacted) errors keep their text; a foreign one keeps just its type.
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, TradingError) else type(exc).__name__
            await self.intents.update(cid, "unknown", error=detail)
            logger.warning("order %s: outcome unknown (%s); reconciling", cid, type(exc).__name__)
        else:
            await self.intents.update(cid, "placed", order)
            logger.info("order %s placed: %s %s %s %s", cid, req.side, req.type, req.amount, req.symbol)
            return Placement(cid, "placed", order)
        intent = await self.intents.get(cid)
        if intent is None:
            raise RuntimeError(f"order intent {cid} vanished from the intent store after it was recorded")
        outcome, found = await self._reconcile(intent)
        if outcome == "placed":
            return Placement(cid, "placed", found)
        if outcome == "not_placed":
            raise OrderRejected(
                "the exchange did not receive the order (checked by client order id); nothing was placed"
            )
        raise OrderOutcomeUnknown(cid, "no reply from the exchange")

    async def _existing(self, intent: Intent) -> Placement | None:
        """The earlier attempt's placement; None if it is now known never to have been placed."""
        if not intent.is_open:
            try:
                order = await self.exchange.fetch_order_by_client_id(intent.client_order_id, intent.symbol)
            except TradingError:
                order = None  # it was placed; only its current state is unknown
            return Placement(intent.client_order_id, "placed", order, duplicate=True)
        outcome, order = await self._reconcile(intent)
        if outcome == "not_placed":
            return None
        if outcome != "placed":
            raise OrderOutcomeUnknown(intent.client_order_id, "an earlier attempt is still unresolved")
        return Placement(intent.client_order_id, "placed", order, duplicate=True)

    async def cancel_order(
        self, order_id: str, symbol: str | None = None, *, idempotent: bool = False
    ) -> Order:
        """Cancel a resting order by exchange id or client order id (refused in safe and halt).

        ``idempotent``: an order that is already canceled is returned as it is instead of being an
        error (a resumed run redoes the cancel of its cut turn)."""
        if self._blocked():
            raise RiskRejection(
                f"the system is in {self.mode_source()} mode: no order changes (read and report only)",
                "safe_mode",
            )
        async with self._lock:
            try:
                return await self._cancel(order_id, symbol)
            except OrderRejected:
                if not idempotent:
                    raise
                done = await self._find_order(order_id)
                if done is None or done.status != "canceled":
                    raise
                return done

    async def cancel_all(self, reason: str) -> list[Order]:
        """Cancel every resting order, whatever the mode (the kill switch calls this: cancelling
        only removes risk). Returns the canceled orders; one that fails is logged and skipped."""
        canceled = []
        async with self._lock:
            for o in await self.exchange.fetch_open_orders():
                try:
                    canceled.append(await self._cancel(o.id, o.symbol))
                except TradingError as exc:
                    logger.error("could not cancel %s (%s): %s", o.id, reason, exc)
        if canceled:
            logger.warning("canceled %d open order(s): %s", len(canceled), reason)
        return canceled

    async def _cancel(self, order_id: str, symbol: str | None) -> Order:
        sym = self.resolve(symbol) if symbol else None
        oid = order_id
        intent = await self.intents.get(order_id)
        if intent is not None and intent.exchange_order_id:
            oid, sym = intent.exchange_order_id, sym or intent.symbol
        if sym is None:  # live exchanges need the symbol: find the order among the open ones
            open_now = await self.exchange.fetch_open_orders()
            match = [o for o in open_now if order_id in (o.id, o.client_order_id)]
            if not match:
                raise OrderRejected(f"no open order {order_id!r}")
            oid, sym = match[0].id, match[0].symbol
        order = await self.exchange.cancel_order(oid, sym)
        if order.client_order_id and await self.intents.get(order.client_order_id) is not None:
            await self.intents.update(order.client_order_id, "placed", order)
        return order

    async def _find_order(self, order_id: str) -> Order | None:
        """The order with this exchange or client order id, as the exchange reports it now."""
        intent = await self.intents.get(order_id)
        if intent is None:
            recent = await self.intents.list(limit=1000)
            intent = next((i for i in recent if i.exchange_order_id == order_id), None)
        if intent is None:
            return None
        return await self.exchange.fetch_order_by_client_id(intent.client_order_id, intent.symbol)

    def _blocked(self) -> bool:
        return self.mode_source() in ("safe", "halt")

    async def pnl(self) -> dict[str, Any]:
        """Equity and PnL figures (paper: full breakdown; live: equity only)."""
        pnl = getattr(self.exchange, "pnl", None)
        if pnl is not None:
            figures = dict(await pnl())
            if self.exchange.mode == "paper":
                observe_paper(self.exchange.id, figures)
            return figures
        return {"equity": (await self.exchange.account_view()).equity}

    async def export_figures(self) -> None:
        """Refresh the paper account's gauges (``alina_paper_*``); a failure is logged, never raised."""
        if self.exchange.mode != "paper":
            return
        try:
            await self.pnl()
        except Exception as exc:
            logger.warning("paper figures not exported: %s", type(exc).__name__)

    async def close(self) -> None:
        """Close the exchange."""
        await self.exchange.close()


async def open_desk(
    cfg: TradingConfig,
    *,
    live: bool = False,
    intents: IntentStore | None = None,
    mode_source: Callable[[], str] = lambda: "normal",
    environ: Mapping[str, str] | None = None,
    feed: PriceFeed | None = None,
) -> TradingDesk:
    """Build and start a desk from the ``trading:`` config section.

    ``intents``: an open store (a :class:`PgIntentStore` makes orders exactly-once across
    restarts and keeps the paper account in ``paper_accounts``); None = in memory, paper only.
    Live trading needs the three opt-ins (LiveTradingRefused) and a Postgres store.
    Open intents are reconciled before this returns.
    """
    env = os.environ if environ is None else environ
    if intents is None:
        if live or cfg.mode == "live":
            missing = live_gate(cfg, live, env)
            raise LiveTradingRefused([*missing, "a Postgres intent store (live orders are recorded durably)"])
        intents = MemoryIntentStore()
    pg = intents if isinstance(intents, PgIntentStore) else None
    account = f"paper:{cfg.exchange}"
    on_change = functools.partial(pg.save_paper_state, account) if pg is not None else None
    exchange = await open_exchange(cfg, live=live, environ=env, feed=feed, on_change=on_change)
    if pg is not None and isinstance(exchange, PaperExchange):
        saved = await pg.load_paper_state(account)
        if saved is not None:
            exchange.load_state(saved)
    desk = TradingDesk(exchange, RiskGuard(cfg.risk), intents, mode_source=mode_source)
    await desk.start()
    return desk
