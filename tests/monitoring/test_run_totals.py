"""Totals of finished runs are served from Postgres by the long-running process's /metrics."""

from __future__ import annotations

import aiohttp
import psycopg
import pytest

from alina.memory_store.migrate import migrate
from alina.monitoring import metrics
from alina.monitoring.server import MetricsServer, RunTotalsCollector

pytestmark = pytest.mark.integration


async def test_run_totals_come_from_the_runs_table_cached_between_scrapes(fresh_pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
        await migrate(conn)
        await conn.execute(
            "INSERT INTO runs (id, task, status, model_calls, tool_calls, prompt_tokens, completion_tokens) "
            "VALUES ('a', 't', 'completed', 3, 2, 100, 10), ('b', 't', 'failed', 1, 0, 50, 0), "
            "('c', 't', 'running', 7, 7, 700, 70)"
        )
    totals = RunTotalsCollector(fresh_pg_dsn, ttl_s=3600)
    async with MetricsServer(port=0, run_totals=totals) as srv, aiohttp.ClientSession() as http:
        get = metrics.REGISTRY.get_sample_value
        assert get("alina_store_runs", {"status": "completed"}) == 1
        assert get("alina_store_runs", {"status": "running"}) == 1
        assert get("alina_store_model_calls_total") == 4  # finished runs only
        assert get("alina_store_tokens_total", {"kind": "prompt"}) == 150
        assert get("alina_store_up") == 1
        async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
            await conn.execute("UPDATE runs SET status = 'completed' WHERE id = 'c'")
        async with http.get(f"{srv.url}/metrics") as r:
            text = await r.text()
        assert "alina_store_model_calls_total 4.0" in text  # the cached read, within ttl_s
    assert get("alina_store_up") is None  # unregistered when the server stopped


def test_an_unreachable_store_keeps_the_scrape_alive() -> None:
    totals = RunTotalsCollector("postgresql://postgres@127.0.0.1:1/none", ttl_s=0, connect_timeout_s=1)
    families = {f.name: f for f in totals.collect()}
    assert set(families) == {"alina_store_up"}
    assert families["alina_store_up"].samples[0].value == 0
