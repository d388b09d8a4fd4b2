"""A canned Binance spot REST endpoint behind ccxt's own request/response code (no network).

:func:`install` patches ``ccxt.async_support.binance.fetch`` (the HTTP call), ``load_markets``
(markets come from the packaged file) and ``throttle`` (no rate limit against a double), so ccxt
really signs, sends and parses every request; only the bytes on the wire are replaced.
Responses follow Binance's documented shapes; error responses go through ccxt's
``handle_errors`` exactly as real ones would.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tests.trading.conftest import MARKETS_FILE

PRICE = 23_775.30


class BinanceDouble:
    """The exchange side: orders by client id, balances, and scripted faults."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.next_fault: str | None = None  # "timeout_after_accept" | "timeout_leaking_headers" | "reject"
        self.seq = 0

    def _error(self, ex: Any, url: str, method: str, code: int, msg: str, status: int = 400) -> None:
        body = {"code": code, "msg": msg}
        ex.handle_errors(status, "Bad Request", url, method, {}, json.dumps(body), body, None, None)
        raise AssertionError("handle_errors did not raise")

    def _order_json(self, o: dict[str, Any]) -> dict[str, Any]:
        return {
            "symbol": "BTCUSDT",
            "orderId": o["orderId"],
            "clientOrderId": o["cid"],
            "transactTime": 1675372500000,
            "time": 1675372500000,
            "price": o["price"],
            "origQty": o["qty"],
            "executedQty": o["filled"],
            "status": o["status"],
            "cummulativeQuoteQty": str(float(o["filled"]) * PRICE),
            "timeInForce": "GTC",
            "type": o["type"],
            "side": o["side"],
        }

    async def handle(self, ex: Any, url: str, method: str, headers: dict[str, str], body: str | None) -> Any:
        parsed = urlparse(url)
        params = {k: v[0] for k, v in parse_qs(parsed.query or "").items()}
        params.update({k: v[0] for k, v in parse_qs(body or "").items()})
        self.requests.append((method, parsed.path, dict(headers or {})))
        path = parsed.path
        if path.endswith("/ticker/24hr"):
            return {
                "symbol": "BTCUSDT",
                "lastPrice": str(PRICE),
                "bidPrice": str(PRICE - 0.1),
                "askPrice": str(PRICE + 0.1),
                "volume": "50000",
                "closeTime": 1675372500000,
            }
        if path.endswith("/klines"):
            n, end = int(params.get("limit", 500)), 1675372500000
            return [
                [
                    end - (n - 1 - i) * 300_000,
                    str(PRICE),
                    str(PRICE + 5),
                    str(PRICE - 5),
                    str(PRICE + (i % 7) - 3),
                    "12.5",
                    end,
                    "0",
                    10,
                    "0",
                    "0",
                    "0",
                ]
                for i in range(n)
            ]
        if path.endswith("/account"):
            return {
                "balances": [
                    {"asset": "USDT", "free": "10000", "locked": "0"},
                    {"asset": "BTC", "free": "0.05", "locked": "0"},
                ]
            }
        if path.endswith("/openOrders"):
            return [self._order_json(o) for o in self.orders.values() if o["status"] == "NEW"]
        if path.endswith("/order") and method == "POST":
            fault, self.next_fault = self.next_fault, None
            if fault == "reject":
                self._error(ex, url, method, -2010, "Account has insufficient balance for requested action.")
            if fault == "timeout_leaking_headers":  # a transport error whose text embeds the headers
                raise ccxt.RequestTimeout(f"binance POST {url} headers={headers} timed out")
            cid = params["newClientOrderId"]
            if cid in self.orders:
                self._error(ex, url, method, -2010, "Duplicate order sent.")
            self.seq += 1
            market = params["type"] == "MARKET"
            qty = params["quantity"]
            self.orders[cid] = {
                "orderId": self.seq,
                "cid": cid,
                "price": params.get("price", "0"),
                "qty": qty,
                "filled": qty if market else "0",
                "status": "FILLED" if market else "NEW",
                "type": params["type"],
                "side": params["side"],
            }
            if fault == "timeout_after_accept":
                raise ccxt.RequestTimeout(f"binance POST {url} timed out")
            return self._order_json(self.orders[cid])
        if path.endswith("/order") and method == "GET":
            o = self.orders.get(params.get("origClientOrderId", ""))
            if o is None:
                self._error(ex, url, method, -2013, "Order does not exist.")
            return self._order_json(o)
        if path.endswith("/order") and method == "DELETE":
            match = [o for o in self.orders.values() if str(o["orderId"]) == params.get("orderId")]
            if not match:
                self._error(ex, url, method, -2011, "Unknown order sent.")
            match[0]["status"] = "CANCELED"
            return self._order_json(match[0])
        raise AssertionError(f"unexpected request {method} {path}")


def install(monkeypatch: pytest.MonkeyPatch) -> BinanceDouble:
    """Route every ccxt binance request to a fresh :class:`BinanceDouble`; return it."""
    double = BinanceDouble()
    markets = json.loads(MARKETS_FILE.read_text())

    async def fetch(self: Any, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return await double.handle(self, url, method, headers or {}, body)

    async def load_markets(self: Any, reload: bool = False, params: Any = None) -> Any:
        if not self.markets:
            self.set_markets(markets)
        return self.markets

    async def no_throttle(self: Any, cost: Any = None) -> None:  # rate limits guard a real server only
        return None

    monkeypatch.setattr(ccxt_async.binance, "fetch", fetch)
    monkeypatch.setattr(ccxt_async.binance, "throttle", no_throttle)
    monkeypatch.setattr(ccxt_async.binance, "load_markets", load_markets)
    return double
