"""The system mode on real Redis and Postgres: one value every process sees, a history with who
and why, alerts opened and resolved, automatic escalation only upwards, recovery only after the
health checks passed long enough, and the CLI (`alina mode show|set|resume`, halt cancels)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alina.memory_store import RunStore
from alina.runtime.modes import SystemMode

pytestmark = pytest.mark.integration


@pytest.fixture
async def dsn(fresh_pg_dsn: str) -> str:
    store = RunStore(fresh_pg_dsn)
    await store.open()  # applies the migrations
    await store.close()
    return fresh_pg_dsn


def modes(dsn: str, redis_url: str, **kw: Any) -> SystemMode:
    return SystemMode(redis_url=redis_url, dsn=dsn, **kw)


async def test_one_mode_for_every_process_with_its_history_and_alerts(dsn: str, redis_service: Any) -> None:
    url = redis_service.url + "/7"
    a, b = modes(dsn, url), modes(dsn, url)
    await a.set("safe", "maintenance window", actor="operator")
    assert (await b.refresh()).mode == "safe" and b.blocks_side_effects
    from alina.monitoring.metrics import REGISTRY

    assert REGISTRY.get_sample_value("alina_mode", {"mode": "safe"}) == 1.0
    assert REGISTRY.get_sample_value("alina_mode", {"mode": "normal"}) == 0.0
    assert (
        REGISTRY.get_sample_value("alina_mode_transitions_total", {"to": "safe", "actor": "operator"}) or 0
    ) >= 1
    assert b.router_mode() == "safe"
    await b.set("normal", "done", actor="operator")
    assert (await a.refresh()).mode == "normal"
    history = await a.history()
    assert [(t.from_mode, t.to_mode, t.actor, t.reason) for t in history] == [
        ("safe", "normal", "operator", "done"),
        ("normal", "safe", "operator", "maintenance window"),
    ]
    with psycopg.connect(dsn) as conn:
        alerts = conn.execute(
            "SELECT kind, severity, resolved_at IS NOT NULL, resolution FROM alerts"
        ).fetchall()
    assert alerts == [("mode", "critical", True, "normal by operator: done")]
    await a.close()
    await b.close()


async def test_escalation_only_goes_up_and_recovery_needs_sustained_health(
    dsn: str, redis_service: Any
) -> None:
    now = [1000.0]
    m = modes(dsn, redis_service.url + "/8", recover_after_s=60, clock=lambda: now[0])
    await m.set("normal", "start", actor="operator")
    assert await m.escalate("safe", "model embedded: 3 timeouts and no fallback", actor="resilience")
    assert not await m.escalate("degraded", "an alert", actor="monitor")  # never downwards
    assert m.current == "safe" and m.state.automatic
    assert not await m.report_health(True)
    now[0] += 30
    assert not await m.report_health(False)  # a failure restarts the clock
    now[0] += 50
    assert not await m.report_health(True)
    now[0] += 61
    assert await m.report_health(True)
    assert m.current == "normal" and m.state.actor == "recovery"
    # an operator's safe mode never ends by itself
    await m.set("safe", "investigating", actor="operator")
    now[0] += 1000
    await m.report_health(True)
    now[0] += 1000
    assert not await m.report_health(True) and m.current == "safe"
    await m.close()


async def test_without_redis_the_mode_comes_from_postgres_and_a_local_floor_never_persists(
    dsn: str, redis_service: Any
) -> None:
    writer = modes(dsn, redis_service.url + "/9")
    await writer.set("halt", "kill switch", actor="operator")
    reader = SystemMode(redis_url="redis://127.0.0.1:1/0", dsn=dsn, timeout_s=0.2)  # Redis unreachable
    assert (await reader.refresh()).mode == "halt"
    local = SystemMode(redis_url=redis_service.url + "/10")  # its own store: nothing set there
    local.raise_floor("store", "safe", "Postgres unreachable")
    assert local.current == "safe" and (await local.refresh()).mode == "safe"
    local.clear_floor("store")
    assert local.current == "normal"
    assert await local._redis.get("alina:mode") is None  # the floor was never shared
    assert [t.to_mode for t in await writer.history()] == ["halt"]
    for m in (writer, reader, local):
        await m.close()


def _cli(args: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALINA_CONFIG"}
    cmd = [sys.executable, "-m", "alina", *args, "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_cli_set_show_resume_and_halt_cancels_open_orders(alina_config_file: Path, pg_service: Any) -> None:
    import asyncio

    from alina.config import load_config
    from alina.trading.desk import open_desk
    from alina.trading.intents import PgIntentStore

    cfg = load_config(alina_config_file)

    async def rest_an_order() -> int:
        async with PgIntentStore(cfg.postgres.dsn()) as intents:
            desk = await open_desk(cfg.trading, intents=intents)
            last = (await desk.ticker("BTC/USDT")).last
            await desk.place_order("BTC/USDT", "buy", "limit", 0.001, round(last * 0.97, 2))
            n = len(await desk.open_orders())
            await desk.close()
            return n

    assert asyncio.run(rest_an_order()) >= 1
    bad = _cli(["mode", "set", "sleepy", "--reason", "x"], alina_config_file)
    assert bad.returncode == 2
    halted = _cli(["mode", "set", "halt", "--reason", "drill"], alina_config_file)
    assert halted.returncode == 0, halted.stderr
    assert "canceled" in halted.stdout and "canceled 0" not in halted.stdout
    shown = json.loads(_cli(["mode", "show", "--json"], alina_config_file).stdout)
    assert shown["mode"] == "halt" and shown["history"][0]["reason"] == "drill"
    assert any(a["kind"] == "mode" and "halt" in a["message"] for a in shown["open_alerts"])

    async def open_now() -> int:
        async with PgIntentStore(cfg.postgres.dsn()) as intents:
            desk = await open_desk(cfg.trading, intents=intents)
            n = len(await desk.open_orders())
            await desk.close()
            return n

    assert asyncio.run(open_now()) == 0
    resumed = _cli(["mode", "resume", "--force", "--reason", "drill over"], alina_config_file)
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads(_cli(["mode", "show", "--json"], alina_config_file).stdout)
    assert after["mode"] == "normal" and after["open_alerts"] == []  # leaving halt resolved the alert


async def test_a_model_that_exhausts_retries_and_fallback_puts_the_system_in_safe_mode(
    dsn: str, redis_service: Any
) -> None:
    """1 + 2 timed-out attempts, a timed-out fallback: the run fails, and the shared mode is safe
    with the reason, recorded in mode_transitions and as an open alert."""
    from alina.config import AlinaConfig
    from alina.models import ResilientClient
    from alina.team import MemorySink, TeamRunner
    from tests.unit.test_resilience import Scripted
    from tests.unit.test_resume import clients

    m = modes(dsn, redis_service.url + "/11")
    await m.set("normal", "start", actor="operator")
    team = clients()
    team["trader"] = ResilientClient(
        "trader", Scripted("primary", ["slow"]), retries=2, fallback=Scripted("fallback", ["slow"])
    )
    runner = TeamRunner(AlinaConfig(), sink=MemorySink(), clients=team, modes=m)
    result = await runner.run("What is the BTC/USDT trend over the last day of data?", run_id="rx")
    assert result.status == "failed"
    other = modes(dsn, redis_service.url + "/11")
    state = await other.refresh()
    assert state.mode == "safe" and state.actor == "resilience" and state.automatic
    assert "trader" in state.reason
    assert runner.team.router.mode == "safe"
    assert result.mode == "safe" and result.to_json()["mode"] == "safe"
    with psycopg.connect(dsn) as conn:
        alert = conn.execute("SELECT kind, message FROM alerts WHERE resolved_at IS NULL").fetchone()
    assert alert is not None and alert[0] == "mode" and "safe" in alert[1]
    await m.close()
    await other.close()


async def test_watch_health_leaves_an_automatic_safe_mode_after_sustained_health(
    dsn: str, redis_service: Any
) -> None:
    import asyncio

    from alina.runtime.modes import watch_health

    now = [0.0]
    m = modes(dsn, redis_service.url + "/12", recover_after_s=30, clock=lambda: now[0])
    await m.escalate("safe", "models exhausted", actor="resilience")
    checks = iter([(False, "model down"), (True, "ok"), (True, "ok"), (True, "ok")])

    def healthy() -> tuple[bool, str]:
        now[0] += 20  # each check happens 20 s (of the injected clock) after the previous one
        return next(checks, (True, "ok"))

    task = asyncio.create_task(watch_health(m, healthy, interval_s=0))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if m.current == "normal":
            break
    task.cancel()
    assert m.current == "normal" and m.state.actor == "recovery"
    await m.close()


async def test_a_running_run_rereads_the_mode_before_every_turn(dsn: str, redis_service: Any) -> None:
    """An operator (another process) sets safe mode while the trader speaks: the run's next
    turn already obeys it."""
    from alina.config import AlinaConfig
    from alina.models import ResilientClient
    from alina.team import MemorySink, TeamRunner
    from tests.unit.test_resume import Scripted, clients

    url = redis_service.url + "/13"
    mine, operator = modes(dsn, url), modes(dsn, url)
    await mine.set("normal", "start", actor="operator")

    class SetsSafe(Scripted):
        async def create(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            await operator.set("safe", "maintenance", actor="operator")
            return await super().create(messages, *args, **kwargs)

    from tests.scripted import call

    team = clients()
    team["trader"] = ResilientClient(
        "trader", SetsSafe([call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')]), retries=0
    )
    runner = TeamRunner(AlinaConfig(), sink=MemorySink(), clients=team, modes=mine)
    assert runner.team.router.mode == "normal"
    result = await runner.run("What is the BTC/USDT trend over the last day, and is the system healthy?")
    assert result.mode == "safe" and runner.team.router.mode == "safe"
    for m in (mine, operator):
        await m.close()


async def test_two_deployments_sharing_a_redis_keep_their_own_mode(
    pg_service: Any, redis_service: Any, fresh_pg_dsn: str
) -> None:
    """The Redis key is named after the deployment's Postgres database: a kill switch in one
    deployment does not stop another that shares the Redis server (and database index)."""
    from alina.config import AlinaConfig

    def config(database: str) -> Any:
        return AlinaConfig.model_validate(
            {
                "postgres": {"port": pg_service.port, "database": database},
                "redis": {"port": redis_service.port, "db": 6},
            }
        )

    database = fresh_pg_dsn.rsplit("/", 1)[1]
    store = RunStore(fresh_pg_dsn)
    await store.open()
    await store.close()
    one = SystemMode.for_config(config(database))
    other = SystemMode.for_config(config(database + "_other"), postgres=False)
    await one.set("halt", "incident in this deployment", actor="operator")
    assert (await other.refresh()).mode == "normal" and not other.blocks_side_effects
    again = SystemMode.for_config(config(database))  # a new process of the first deployment
    assert (await again.refresh()).mode == "halt"
    assert one.key != other.key and one.key.startswith("alina:mode:")
    await one.set("normal", "resolved", actor="operator")
    for m in (one, other, again):
        await m.close()
