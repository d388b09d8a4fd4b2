"""Planted exchange keys never reach logs, the database, prompts (skill results) or metrics.

A live desk is opened with planted keys (the exchange is a canned Binance behind ccxt's real
request code, see ``_binance_http``), driven through every path — fills, refusals, a lost reply,
a transport error whose text embeds the request headers, cancels, every trader skill — and then
every place a key could leak is searched for both planted values.
"""

from __future__ import annotations

import logging

import psycopg
import pytest
from psycopg import sql

from alina.monitoring.metrics import render_latest
from alina.skills import trading as skills
from alina.skills.bindings import bind_desk
from alina.trading.config import TradingConfig
from alina.trading.desk import open_desk
from alina.trading.errors import TradingError
from alina.trading.intents import PgIntentStore
from tests.trading._binance_http import install

pytestmark = pytest.mark.integration

KEY = "PLANTED-api-key-3f9a1c77e0b24d5e"
SECRET = "PLANTED-api-secret-8d2b6a0f4c1e9977"


def _dump_database(dsn: str) -> str:
    """Every row of every table in the public schema, as text."""
    chunks = []
    with psycopg.connect(dsn) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchall()
        ]
        for table in tables:
            q = sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
            chunks += [r[0] for r in conn.execute(q).fetchall()]
    assert any("order_intents" in t for t in tables)
    return "\n".join(chunks)


async def test_planted_keys_never_leak(fresh_pg_dsn, monkeypatch, caplog) -> None:
    double = install(monkeypatch)
    monkeypatch.setenv("ALINA_EXCHANGE_API_KEY", KEY)
    monkeypatch.setenv("ALINA_EXCHANGE_API_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    cfg = TradingConfig(mode="live")
    seen: list[str] = [repr(cfg), str(cfg), cfg.model_dump_json(), "\n".join(cfg.cross_field_problems())]

    async with PgIntentStore(fresh_pg_dsn) as store:
        desk = await open_desk(cfg, live=True, intents=store)
        try:
            with bind_desk(desk, mode=lambda: "normal"):
                seen += [repr(desk), str(desk), repr(desk.exchange), str(vars(desk.exchange)), repr(store)]
                seen.append(await skills.place_order("BTC/USDT", "buy", 0.01))
                seen.append(await skills.place_order("BTC/USDT", "buy", 0.01, "limit", 23_500.0))
                double.next_fault = "reject"
                seen.append(await skills.place_order("BTC/USDT", "buy", 0.02))
                double.next_fault = "timeout_after_accept"  # reply lost: reconciled by client id
                seen.append(await skills.place_order("BTC/USDT", "sell", 0.01))
                double.next_fault = "timeout_leaking_headers"  # error text carries the key header
                seen.append(await skills.place_order("BTC/USDT", "sell", 0.01))
                seen.append(await skills.place_order("BTC/USDT", "buy", 5.0))  # risk guard
                for tool in (
                    skills.ticker,
                    skills.balance,
                    skills.positions,
                    skills.open_orders,
                    skills.market_regime,
                ):
                    seen.append(await tool())
                opened = await desk.open_orders()
                seen.append(await skills.cancel_order(opened[0].client_order_id))
                seen.append(await skills.cancel_order("no-such-order"))
                try:
                    await desk.place_order("BTC/USDT", "buy", "market", 100.0)
                except TradingError as exc:
                    seen.append(str(exc))
                seen += [repr(i) for i in await store.list()]
        finally:
            await desk.close()

    assert any(s.startswith("placed buy market") for s in seen)
    assert any("refused by the risk guard" in s for s in seen)
    assert any(h.get("X-MBX-APIKEY") == KEY for _, _, h in double.requests)  # it did reach the exchange
    places = {
        "results and reprs": "\n".join(seen),
        "logs": caplog.text,
        "database": _dump_database(fresh_pg_dsn),
        "metrics": render_latest().decode(),
    }
    assert "***" in places["database"]  # the leaking transport error was stored, redacted
    for where, text in places.items():
        assert KEY not in text and SECRET not in text, f"a planted key leaked into {where}"
