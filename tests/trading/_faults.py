"""Fault injection around a real PaperExchange: lost requests, lost replies, crashes, outages."""

from __future__ import annotations

from typing import Any

from alina.trading.errors import ExchangeUnavailable
from alina.trading.orders import Order, OrderRequest
from alina.trading.paper import PaperExchange

FAULTS = (
    "none",
    "request_lost",
    "reply_lost",
    "crash_before_send",
    "crash_after_send",
    "reply_lost_lookup_down",
)


class SimulatedCrash(BaseException):
    """The process dies mid-call (BaseException: nothing in the desk may swallow it)."""


class FaultyExchange:
    """Delegates to ``inner``; ``arm(fault)`` makes the NEXT create_order misbehave.

    * request_lost: the request never reaches the exchange (connection reset)
    * reply_lost: the exchange accepts the order, the reply is lost (timeout)
    * crash_before_send / crash_after_send: the process dies before / after the exchange got it
    * reply_lost_lookup_down: reply lost, and the next ``lookups_down`` lookups fail too
    """

    def __init__(self, inner: PaperExchange) -> None:
        self.inner = inner
        self.fault = "none"
        self.lookups_down = 0
        self.sent = 0  # create_order calls that reached the inner exchange

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"FaultyExchange({self.inner!r})"

    def arm(self, fault: str, lookups_down: int = 0) -> None:
        self.fault, self.lookups_down = fault, lookups_down

    async def create_order(self, request: OrderRequest) -> Order:
        fault, self.fault = self.fault, "none"
        if fault == "request_lost":
            raise ConnectionResetError("connection reset before the request was sent")
        if fault == "crash_before_send":
            raise SimulatedCrash()
        self.sent += 1
        order = await self.inner.create_order(request)
        if fault in ("reply_lost", "reply_lost_lookup_down"):
            raise TimeoutError("the exchange accepted the order but the reply was lost")
        if fault == "crash_after_send":
            raise SimulatedCrash()
        return order

    async def fetch_order_by_client_id(self, client_order_id: str, symbol: str | None = None) -> Order | None:
        if self.lookups_down > 0:
            self.lookups_down -= 1
            raise ExchangeUnavailable("order lookup: exchange unreachable")
        return await self.inner.fetch_order_by_client_id(client_order_id, symbol)
