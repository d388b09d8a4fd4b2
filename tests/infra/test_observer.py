"""The observer on real Postgres and Redis, fed by the real metrics of scripted model calls.

Slow calls are a scripted model that sleeps past its timeout (every attempt times out, whatever
the machine's speed); the observer's clock is injected, so windows and for-durations never
depend on wall-clock time.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from alina.config import ActionConfig, AlertRule, AlertsConfig
from alina.memory_store import RunStore
from alina.models import Governor, ModelUnavailableError, ModelUnreachableError, ResilientClient
from alina.monitoring.observer import Observer, ProcessFigures
from alina.runtime.modes import SystemMode
from tests.unit.test_resilience import ASK, Scripted

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def dsn(fresh_pg_dsn: str) -> str:
    store = RunStore(fresh_pg_dsn)
    await store.open()  # applies the migrations
    await store.close()
    return fresh_pg_dsn


def alerts(dsn: str, kind: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT severity, message, source, resolved_at IS NOT NULL, resolution FROM alerts "
            "WHERE kind = %s ORDER BY id",
            (kind,),
        ).fetchall()


async def calls(client: ResilientClient, n: int, *, fail: bool) -> None:
    for _ in range(n):
        if fail:
            with pytest.raises(ModelUnavailableError):
                await client.create(ASK)
        else:
            await client.create(ASK)


async def test_timeouts_lower_concurrency_until_they_stop_then_the_limit_is_restored(dsn: str) -> None:
    clock, gov = Clock(), Governor(4, name="obs-timeouts")
    rule = AlertRule(
        name="model_timeouts",
        figure="timeouts_per_min",
        threshold=3.0,
        clear=1.0,
        for_s=10.0,
        action="lower_concurrency",
    )
    cfg = AlertsConfig(rules=[rule], actions={"lower_concurrency": ActionConfig(limit=1)}, window_s=60.0)
    figures = ProcessFigures(60.0, clock=clock)
    obs = Observer(cfg, figures=figures, dsn=dsn, clock=clock, governors=lambda: [gov])
    model = Scripted("primary", ["slow"], timeout_s=0.02)
    client = ResilientClient("obs_slow", model, retries=0, governor=gov)
    await obs.evaluate()  # the baseline

    await calls(client, 5, fail=True)  # 5 timeouts in a 60s window: 5/min
    clock.now += 1
    assert await obs.evaluate() == [] and gov.limit == 4  # not for 10s yet
    clock.now += 10
    assert await obs.evaluate() == ["fired:model_timeouts"]
    assert gov.limit == 1
    [(severity, message, source, resolved, _)] = alerts(dsn, "model_timeouts")
    assert (severity, source, resolved) == ("warning", "observer", False)
    assert "timeouts_per_min = 5" in message

    model.steps = ["fine"]  # stop injecting: the model answers again
    await calls(client, 3, fail=False)
    clock.now += 61  # the timeouts leave the window
    assert await obs.evaluate() == ["cleared:model_timeouts"]
    assert gov.limit == 4
    [(_, _, _, resolved, resolution)] = alerts(dsn, "model_timeouts")
    assert resolved and "past the clear threshold" in resolution
    rec = obs.actions.records[1]
    assert rec.status == "undone" and rec.recovered is True


async def test_error_rate_enters_safe_mode_and_leaves_it_when_errors_stop(
    dsn: str, redis_service: Any
) -> None:
    clock = Clock()
    mode = SystemMode(redis_url=redis_service.url + "/9", dsn=dsn)
    await mode.set("normal", "test start", actor="test")
    rule = AlertRule(
        name="model_errors",
        figure="model_error_rate",
        threshold=0.5,
        clear=0.2,
        for_s=0.0,
        severity="critical",
        action="safe_mode",
    )
    cfg = AlertsConfig(rules=[rule], actions={"safe_mode": ActionConfig(min_interval_s=0.0)}, window_s=60.0)
    obs = Observer(cfg, figures=ProcessFigures(60.0, clock=clock), dsn=dsn, mode=mode, clock=clock)
    model = Scripted("primary", [ModelUnreachableError("connection refused")])
    client = ResilientClient("obs_err", model, retries=0, governor=Governor(4, name="obs-errors"))
    await obs.evaluate()

    await calls(client, 4, fail=True)
    clock.now += 1
    assert await obs.evaluate() == ["fired:model_errors"]
    other = SystemMode(redis_url=redis_service.url + "/9", dsn=dsn)  # another process sees it
    state = await other.refresh()
    assert state.mode == "safe" and state.actor == "observer:model_errors"
    [(severity, message, source, resolved, _)] = alerts(dsn, "model_errors")
    assert (severity, source, resolved) == ("critical", "observer", False) and "error_rate = 1" in message
    assert [r[3] for r in alerts(dsn, "mode")] == [False]  # the mode's own alert is open

    model.steps = ["fine"]
    await calls(client, 4, fail=False)
    clock.now += 61
    assert await obs.evaluate() == ["cleared:model_errors"]
    assert (await other.refresh()).mode == "normal"
    assert [r[3] for r in alerts(dsn, "model_errors")] == [True]
    assert [r[3] for r in alerts(dsn, "mode")] == [True]

    # fired again, but an operator then chose safe mode: clearing the alert leaves it to them
    model.steps = [ModelUnreachableError("connection refused")]
    await calls(client, 4, fail=True)
    clock.now += 61  # the window holds these failures only
    assert await obs.evaluate() == ["fired:model_errors"]
    await other.set("safe", "investigating", actor="operator")
    model.steps = ["fine"]
    await calls(client, 4, fail=False)
    clock.now += 61
    assert await obs.evaluate() == ["cleared:model_errors"]
    assert (await other.refresh()).mode == "safe"
    await other.set("normal", "done", actor="operator")
    await mode.close()
    await other.close()


async def test_alertmanager_webhook_fires_and_resolves_stored_alerts(dsn: str) -> None:
    from tests.unit.test_observer import ALERTMANAGER

    gov = Governor(4, name="obs-am")
    rule = AlertRule(
        name="t_timeouts", figure="timeouts_per_min", threshold=3.0, clear=1.0, action="lower_concurrency"
    )
    cfg = AlertsConfig(rules=[rule], actions={"lower_concurrency": ActionConfig(limit=2)})
    obs = Observer(cfg, dsn=dsn, governors=lambda: [gov])
    assert (await obs.handle_alertmanager(ALERTMANAGER))["fired"] == ["t_timeouts"]
    assert gov.limit == 2
    [(severity, message, source, resolved, _)] = alerts(dsn, "t_timeouts")
    assert (severity, source, resolved) == ("critical", "alertmanager", False)
    assert message == "alertmanager: model timeouts above 3/min"
    one = {**ALERTMANAGER["alerts"][0], "status": "resolved", "endsAt": "2026-01-01T00:05:00Z"}
    got = await obs.handle_alertmanager({**ALERTMANAGER, "status": "resolved", "alerts": [one]})
    assert got["resolved"] == ["t_timeouts"] and gov.limit == 4
    [(_, _, _, resolved, resolution)] = alerts(dsn, "t_timeouts")
    assert resolved and resolution.startswith("alertmanager resolved")


class Figures:
    """Scripted figures (the rule logic is tested elsewhere; here: the rows and decisions)."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}

    def read(self) -> dict[str, float | None]:
        return dict(self.values)


def action_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT a.id, a.rule, a.action, a.status, a.decided_by, a.alert_id = al.id, a.owner "
            "FROM alert_actions a LEFT JOIN alerts al ON al.kind = a.rule ORDER BY a.id"
        ).fetchall()


async def decide(dsn: str, action_id: int, approve: bool) -> dict[str, Any]:
    from alina.monitoring.action_store import decide as store_decide

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await store_decide(conn, action_id, approve, "operator:test")


async def test_approval_waits_in_postgres_until_an_operator_decides(dsn: str) -> None:
    from alina.models._resilient import prefers_fallback
    from alina.monitoring.action_store import ActionDecisionError

    clock, figs = Clock(), Figures()
    rules = [
        AlertRule(
            name="t_quality",
            figure="evaluation_score",
            op="<",
            threshold=0.5,
            clear=0.6,
            for_s=0.0,
            action="fallback_model",
        ),
        AlertRule(
            name="t_errors", figure="model_error_rate", threshold=0.5, clear=0.2, for_s=0.0, action="halt"
        ),
    ]
    actions = {
        "fallback_model": ActionConfig(approve=True, min_interval_s=0.0, agents=["t_agent"]),
        "halt": ActionConfig(approve=True, min_interval_s=0.0),
    }
    obs = Observer(AlertsConfig(rules=rules, actions=actions), figures=figs, dsn=dsn, clock=clock)

    figs.values = {"evaluation_score": 0.3, "model_error_rate": 0.9}
    assert await obs.evaluate() == ["fired:t_quality", "fired:t_errors"]
    rows = action_rows(dsn)
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        ("t_quality", "fallback_model", "pending", True),
        ("t_errors", "halt", "pending", True),
    ]
    assert rows[0][6] == obs.owner and not prefers_fallback("t_agent")
    quality, errors = rows[0][0], rows[1][0]

    # an operator approves one and rejects the other; the observer takes both up on its next cycle
    assert (await decide(dsn, quality, True))["status"] == "approved"
    assert (await decide(dsn, errors, False))["status"] == "rejected"
    with pytest.raises(ActionDecisionError, match="is rejected, not pending"):
        await decide(dsn, errors, True)
    with pytest.raises(ActionDecisionError, match="no alert action with id 999"):
        await decide(dsn, 999, True)
    assert await obs.evaluate() == ["approved:t_quality", "rejected:t_errors"]
    assert prefers_fallback("t_agent")
    decided = [(r[3], r[4]) for r in action_rows(dsn)]
    assert decided == [("applied", "operator:test"), ("cancelled", "operator:test")]

    # the alert clears: the applied action is undone (row and effect)
    figs.values = {"evaluation_score": 0.9, "model_error_rate": 0.0}
    assert await obs.evaluate() == ["cleared:t_quality", "cleared:t_errors"]
    assert not prefers_fallback("t_agent")
    assert [r[3] for r in action_rows(dsn)] == ["undone", "cancelled"]

    # fired again and left pending: stopping the observer cancels it (no process left to apply it)
    figs.values = {"evaluation_score": 0.3}
    await obs.evaluate()
    assert action_rows(dsn)[-1][3] == "pending"
    await obs.stop()
    assert action_rows(dsn)[-1][3] == "cancelled"


async def test_status_lists_the_actions_waiting_first(dsn: str, tmp_path: Any) -> None:
    from alina.config import load_config
    from alina.runtime.status import gather_status

    clock, figs = Clock(), Figures()
    rule = AlertRule(
        name="t_wait", figure="model_error_rate", threshold=0.5, clear=0.2, for_s=0.0, action="halt"
    )
    obs = Observer(
        AlertsConfig(rules=[rule], actions={"halt": ActionConfig(approve=True)}),
        figures=figs,
        dsn=dsn,
        clock=clock,
    )
    figs.values = {"model_error_rate": 1.0}
    await obs.evaluate()
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    cfg = load_config(
        overrides={
            "postgres": {
                "port": int(info["port"]),
                "database": info["dbname"],
                "host": info.get("host", "127.0.0.1"),
                "user": info["user"],
            },
            "redis": {"port": 1},
        }
    )
    s = await gather_status(cfg)
    assert s["actions"]["available"] and s["actions"]["waiting"] == 1
    items = [(a["rule"], a["action"], a["status"]) for a in s["actions"]["items"]]
    assert items == [("t_wait", "halt", "pending")]
    await obs.stop()


async def test_a_pending_action_is_cancelled_when_its_alert_clears_first(dsn: str) -> None:
    clock, figs = Clock(), Figures()
    rule = AlertRule(
        name="t_first", figure="model_error_rate", threshold=0.5, clear=0.2, for_s=0.0, action="halt"
    )
    obs = Observer(
        AlertsConfig(rules=[rule], actions={"halt": ActionConfig(approve=True)}),
        figures=figs,
        dsn=dsn,
        clock=clock,
    )
    figs.values = {"model_error_rate": 1.0}
    await obs.evaluate()
    figs.values = {"model_error_rate": 0.0}
    await obs.evaluate()
    assert [r[3] for r in action_rows(dsn)] == ["cancelled"]


async def test_the_monitor_tool_names_open_alerts_and_waiting_actions(dsn: str) -> None:
    from alina.runtime.status import MonitorStatus

    clock, figs = Clock(), Figures()
    rule = AlertRule(
        name="t_tool", figure="model_error_rate", threshold=0.5, clear=0.2, for_s=0.0, action="halt"
    )
    obs = Observer(
        AlertsConfig(rules=[rule], actions={"halt": ActionConfig(approve=True)}),
        figures=figs,
        dsn=dsn,
        clock=clock,
    )
    try:
        assert MonitorStatus(lambda: "normal", dsn).detail() == ""
        figs.values = {"model_error_rate": 1.0}
        await obs.evaluate()
        detail = MonitorStatus(lambda: "normal", dsn).detail()  # a new one: no cached reading
    finally:
        await obs.stop()
    assert detail.startswith("open: t_tool (warning, since ")
    assert "model_error_rate = 1" in detail and "halt for t_tool waits for an operator" in detail


async def test_the_refresh_hook_runs_before_every_evaluation() -> None:
    seen: list[int] = []

    async def refresh() -> None:
        seen.append(len(seen))

    obs = Observer(AlertsConfig(rules=[]), figures=Figures(), refresh=refresh)
    await obs.evaluate()
    await obs.evaluate()
    assert seen == [0, 1]
