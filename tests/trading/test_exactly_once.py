"""Fault injection: the exchange accepts orders whose replies are lost (and worse); no duplicates.

Every trial places one logical order (one ``request_id``) through the desk while a fault is
injected: the request is lost, the reply is lost, the process crashes before or after the
exchange got the order, or the reply is lost AND order lookups fail for a while. The caller
retries the same request until it gets an answer, restarting the desk (new Postgres pool,
start-up reconciliation, sometimes the paper account reloaded from its Postgres snapshot)
after a crash. Afterwards the exchange must hold exactly one order for the request.
"""

from __future__ import annotations

import functools
import random

import pytest

from alina.trading.config import RiskConfig
from alina.trading.desk import TradingDesk
from alina.trading.errors import OrderOutcomeUnknown, OrderRejected, UnresolvedIntents
from alina.trading.intents import PgIntentStore
from alina.trading.risk import RiskGuard
from tests.trading._faults import FAULTS, FaultyExchange, SimulatedCrash

pytestmark = pytest.mark.integration

TRIALS = 240
ACCOUNT = "paper:binance"
LIMITS = RiskConfig(
    max_order_notional=1e6,
    max_position_notional=1e7,
    max_total_exposure=1e7,
    max_open_orders=1000,
    price_band_pct=5,
)


async def test_lost_replies_never_duplicate_orders(fresh_pg_dsn: str, make_paper) -> None:
    rng = random.Random(4242)  # seeded: every run injects the same faults
    store = PgIntentStore(fresh_pg_dsn)
    await store.open()
    save = functools.partial(store.save_paper_state, ACCOUNT)
    faulty = FaultyExchange(make_paper(start=300, on_change=save))
    desk = TradingDesk(faulty, RiskGuard(LIMITS), store)
    stats = {f: 0 for f in FAULTS} | {"restarts": 0, "reloads": 0, "retries": 0, "unknown": 0}

    async def restart() -> TradingDesk:
        nonlocal store
        await store.close()
        store = PgIntentStore(fresh_pg_dsn)
        await store.open()
        stats["restarts"] += 1
        if rng.random() < 0.5:  # the paper account too comes back from Postgres
            snapshot = await store.load_paper_state(ACCOUNT)
            assert snapshot is not None
            reloaded = make_paper(start=0, on_change=functools.partial(store.save_paper_state, ACCOUNT))
            reloaded.load_state(snapshot)
            faulty.inner = reloaded
            stats["reloads"] += 1
        else:
            faulty.inner.on_change = functools.partial(store.save_paper_state, ACCOUNT)
        fresh = TradingDesk(faulty, RiskGuard(LIMITS), store)
        await fresh.start()
        return fresh

    for trial in range(TRIALS):
        fault = FAULTS[trial % len(FAULTS)]
        stats[fault] += 1
        faulty.arm(fault, lookups_down=rng.choice([1, 2, 5]) if fault == "reply_lost_lookup_down" else 0)
        request_id = f"trial-{trial}"
        last = (await faulty.inner.fetch_ticker("BTC/USDT")).last
        limit = rng.random() < 0.4
        args = (
            ("BTC/USDT", "buy", "limit", 0.0004, round(last * 0.97, 2))
            if limit
            else ("BTC/USDT", "buy", "market", 0.0004)
        )
        placement = None
        for _attempt in range(10):
            try:
                placement = await desk.place_order(*args, request_id=request_id)
                break
            except SimulatedCrash:
                desk = await restart()
            except (OrderOutcomeUnknown, UnresolvedIntents):
                stats["unknown"] += 1
            except OrderRejected as exc:
                assert "did not receive" in exc.reason  # only a lost request may end this way
            stats["retries"] += 1
        assert placement is not None, f"trial {trial} ({fault}) never got an answer"

        async with store._p().connection() as conn:
            cur = await conn.execute(
                "SELECT client_order_id, status FROM order_intents WHERE request_id = %s", (request_id,)
            )
            intents = await cur.fetchall()
        at_exchange = [cid for cid, _ in intents if await faulty.inner.fetch_order_by_client_id(cid)]
        assert len(at_exchange) == 1, f"trial {trial} ({fault}): {len(at_exchange)} orders, intents {intents}"
        assert [s for cid, s in intents if cid in at_exchange] == ["placed"]
        assert placement.client_order_id == at_exchange[0]
        if args[2] == "market":  # market orders fill at once: exactly one fill for the request
            assert sum(f.client_order_id == at_exchange[0] for f in faulty.inner.fills) == 1

    # No orphan: every exchange order has an intent; every placed intent has its exchange order.
    async with store._p().connection() as conn:
        cur = await conn.execute("SELECT client_order_id, status FROM order_intents")
        rows = dict(await cur.fetchall())
    orders = list(faulty.inner._orders.values())
    assert len(orders) == TRIALS
    assert {o.client_order_id for o in orders} == {cid for cid, s in rows.items() if s == "placed"}
    assert not [cid for cid, s in rows.items() if s in ("pending", "unknown")]
    await store.close()
    print(f"\nexactly-once: {TRIALS} trials, {len(orders)} orders, 0 duplicates; {stats}")
