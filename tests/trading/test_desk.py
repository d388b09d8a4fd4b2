"""The desk: safe mode, idempotent requests, never re-sending, reconciliation (in-memory store)."""

from __future__ import annotations

import pytest

from alina.trading.config import RiskConfig, TradingConfig
from alina.trading.desk import ORDERS, TradingDesk, open_desk
from alina.trading.errors import (
    LiveTradingRefused,
    OrderOutcomeUnknown,
    OrderRejected,
    RiskRejection,
    UnresolvedIntents,
)
from alina.trading.intents import MemoryIntentStore
from alina.trading.risk import RiskGuard
from tests.trading._faults import FaultyExchange, SimulatedCrash

BIG = RiskConfig(
    max_order_notional=5000, max_position_notional=9000, max_total_exposure=9000, max_open_orders=50
)


@pytest.fixture
def faulty(make_paper) -> FaultyExchange:
    return FaultyExchange(make_paper(start=200))


def desk_on(ex, store=None, mode="normal") -> TradingDesk:
    return TradingDesk(ex, RiskGuard(BIG), store or MemoryIntentStore(), mode_source=lambda: mode)


async def test_safe_mode_refuses_placement_and_cancel(faulty) -> None:
    desk = desk_on(faulty, mode="safe")
    before = ORDERS.labels(mode="paper", outcome="risk_rejected")._value.get()
    with pytest.raises(RiskRejection, match="safe mode") as info:
        await desk.place_order("BTC/USDT", "buy", "market", 0.01)
    assert info.value.rule == "safe_mode"
    with pytest.raises(RiskRejection, match="safe mode"):
        await desk.cancel_order("paper-1")
    assert faulty.sent == 0 and await desk.intents.list() == []
    assert ORDERS.labels(mode="paper", outcome="risk_rejected")._value.get() == before + 1


async def test_intent_is_written_before_the_order_is_sent(faulty) -> None:
    store = MemoryIntentStore()
    desk = desk_on(faulty, store)
    seen: list[str] = []
    real = faulty.inner.create_order

    async def spy(req):
        intent = await store.get(req.client_order_id)
        seen.append(intent.status if intent else "missing")
        return await real(req)

    faulty.inner.create_order = spy  # type: ignore[method-assign]
    placed = await desk.place_order("btc", "buy", "market", 0.01)
    assert seen == ["pending"]
    assert (await store.get(placed.client_order_id)).status == "placed"


async def test_lost_reply_is_reconciled_not_resent(faulty) -> None:
    desk = desk_on(faulty)
    faulty.arm("reply_lost")
    placed = await desk.place_order("BTC/USDT", "buy", "market", 0.01)
    assert placed.status == "placed" and placed.order is not None
    assert faulty.sent == 1 and len(faulty.inner.fills) == 1


async def test_lost_request_is_reported_as_not_placed(faulty) -> None:
    desk = desk_on(faulty)
    faulty.arm("request_lost")
    with pytest.raises(OrderRejected, match="did not receive the order"):
        await desk.place_order("BTC/USDT", "buy", "market", 0.01)
    (intent,) = await desk.intents.list()
    assert intent.status == "not_placed" and faulty.sent == 0


async def test_unknown_outcome_blocks_new_orders_until_reconciled(faulty) -> None:
    desk = desk_on(faulty)
    faulty.arm("reply_lost_lookup_down", lookups_down=2)
    with pytest.raises(OrderOutcomeUnknown, match="not retried"):
        await desk.place_order("BTC/USDT", "buy", "market", 0.01)
    with pytest.raises(UnresolvedIntents, match="unknown outcome"):
        await desk.place_order("BTC/USDT", "buy", "market", 0.02)  # the second lookup also fails
    placed = await desk.place_order("BTC/USDT", "buy", "market", 0.02)  # reconciled first, then sent
    assert placed.status == "placed"
    statuses = sorted(i.status for i in await desk.intents.list())
    assert statuses == ["placed", "placed"] and faulty.sent == 2


async def test_request_id_makes_placement_idempotent(faulty) -> None:
    desk = desk_on(faulty)
    first = await desk.place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-1")
    again = await desk.place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-1")
    assert again.duplicate and again.client_order_id == first.client_order_id and faulty.sent == 1


async def test_crash_then_restart_reconciles_open_intents(faulty) -> None:
    store = MemoryIntentStore()
    faulty.arm("crash_after_send")
    with pytest.raises(SimulatedCrash):
        await desk_on(faulty, store).place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-2")
    assert [i.status for i in await store.open_intents()] == ["pending"]
    faulty.arm("crash_before_send")
    restarted = desk_on(faulty, store)
    assert await restarted.start() == {"placed": 1, "not_placed": 0, "still_open": 0}
    again = await restarted.place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-2")
    assert again.duplicate and faulty.sent == 1


async def test_cancel_updates_the_intent(faulty) -> None:
    desk = desk_on(faulty)
    last = (await desk.ticker("BTC/USDT")).last
    placed = await desk.place_order("BTC/USDT", "buy", "limit", 0.01, round(last * 0.98, 2))
    canceled = await desk.cancel_order(placed.client_order_id)
    assert canceled.status == "canceled"
    assert (await desk.intents.get(placed.client_order_id)).order_status == "canceled"


async def test_bad_inputs_are_rejected_before_any_intent(faulty) -> None:
    desk = desk_on(faulty)
    for args, match in [
        (("BTC/USDT", "hold", "market", 0.01), "side"),
        (("BTC/USDT", "buy", "stop", 0.01), "type"),
        (("BTC/USDT", "buy", "market", -1), "amount"),
        (("BTC/USDT", "buy", "limit", 0.01, None), "price"),
        (("DOGE/EUR", "buy", "market", 1), "unknown symbol"),
    ]:
        with pytest.raises(OrderRejected, match=match):
            await desk.place_order(*args)
    assert await desk.intents.list() == []


async def test_open_desk_defaults_to_paper_and_refuses_live_without_store() -> None:
    desk = await open_desk(TradingConfig())
    assert desk.exchange.mode == "paper" and desk.exchange.symbols == ["BTC/USDT"]
    with pytest.raises(LiveTradingRefused, match="Postgres intent store"):
        await open_desk(TradingConfig(mode="live"), live=True, environ={})


async def test_a_request_known_not_placed_may_be_sent_again(faulty) -> None:
    desk = desk_on(faulty)
    faulty.arm("request_lost")
    with pytest.raises(OrderRejected, match="did not receive"):
        await desk.place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-3")
    placed = await desk.place_order("BTC/USDT", "buy", "market", 0.01, request_id="r-3")
    assert not placed.duplicate and faulty.sent == 1
    assert sorted(i.status for i in await desk.intents.list()) == ["not_placed", "placed"]
