"""Order intents and paper snapshots on a real Postgres (migration 0003)."""

from __future__ import annotations

import psycopg
import pytest

from alina.trading.config import TradingConfig
from alina.trading.desk import open_desk
from alina.trading.intents import DuplicateRequest, Intent, PgIntentStore
from alina.trading.orders import Order, OrderRequest

pytestmark = pytest.mark.integration


def intent(cid: str, request_id: str | None = None) -> Intent:
    return Intent.for_request(
        OrderRequest("BTC/USDT", "buy", "limit", 0.01, 20_000.0, cid), "paper", "paper:binance", request_id
    )


async def test_store_contract(fresh_pg_dsn: str) -> None:
    async with PgIntentStore(fresh_pg_dsn) as store:
        await store.record(intent("c1", "r1"))
        await store.record(intent("c2"))
        assert [i.client_order_id for i in await store.open_intents()] == ["c1", "c2"]
        with pytest.raises(DuplicateRequest) as dup:
            await store.record(intent("c3", "r1"))
        assert dup.value.existing.client_order_id == "c1"
        with pytest.raises(psycopg.errors.UniqueViolation):
            await store.record(intent("c2"))

        order = Order("x-9", "c1", "BTC/USDT", "buy", "limit", 0.01, 20_000.0, "open", 0)
        await store.update("c1", "placed", order)
        await store.update("c2", "not_placed", error="not found at the exchange")
        got = await store.get("c1")
        assert got is not None and (got.status, got.exchange_order_id, got.order_status) == (
            "placed",
            "x-9",
            "open",
        )
        assert await store.open_intents() == []
        assert (await store.by_request("r1")).client_order_id == "c1"  # type: ignore[union-attr]
        await store.update(
            "c1", "placed", Order("x-9", "c1", "BTC/USDT", "buy", "limit", 0.01, 2e4, "canceled", 0)
        )
        assert (await store.get("c1")).order_status == "canceled"  # type: ignore[union-attr]
        await store.record(intent("c4", "r2"))
        await store.update("c4", "not_placed")
        await store.record(intent("c5", "r2"))  # a definitively failed request may be tried again
        assert [i.client_order_id for i in await store.list()] == ["c5", "c4", "c2", "c1"]


async def test_paper_account_survives_a_restart(fresh_pg_dsn: str) -> None:
    cfg = TradingConfig()
    async with PgIntentStore(fresh_pg_dsn) as store:
        desk = await open_desk(cfg, intents=store)
        await desk.place_order("BTC/USDT", "buy", "market", 0.01)
        last = (await desk.ticker("BTC/USDT")).last
        resting = await desk.place_order("BTC/USDT", "buy", "limit", 0.01, round(last * 0.97, 2))
        await desk.exchange.advance(6)  # type: ignore[union-attr]
        balances, clock = await desk.balances(), desk.exchange.feed.now_ms()  # type: ignore[union-attr]

    async with PgIntentStore(fresh_pg_dsn) as store:
        again = await open_desk(cfg, intents=store)
        assert again.exchange.feed.now_ms() == clock  # type: ignore[union-attr]
        assert await again.balances() == balances
        assert [o.client_order_id for o in await again.open_orders()] == [resting.client_order_id]
        assert await store.open_intents() == []
