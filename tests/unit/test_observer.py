"""The observer on an injected clock and scripted figures: for-duration, hysteresis, rate limit,
approve, undo on clear, the fallback switch, the Alertmanager payload, the windowed figures."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alina.config import ActionConfig, AlertRule, AlertsConfig
from alina.models import Governor, clear_fallback_preference, prefers_fallback
from alina.monitoring import metrics
from alina.monitoring.metrics import REGISTRY
from alina.monitoring.observer import Observer, ProcessFigures, histogram_quantile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Figures:
    """Scripted figures: whatever the test put in ``values``."""

    def __init__(self, **values: float | None) -> None:
        self.values: dict[str, float | None] = dict(values)

    def read(self) -> dict[str, float | None]:
        return dict(self.values)


def config(*rules: AlertRule, **actions: ActionConfig) -> AlertsConfig:
    acts = {"lower_concurrency": ActionConfig(limit=1, min_interval_s=100.0)}
    acts.update(actions)
    return AlertsConfig(rules=list(rules), actions=acts, verify_cycles=2)  # type: ignore[arg-type]


TIMEOUTS = AlertRule(
    name="t_timeouts",
    figure="timeouts_per_min",
    threshold=3.0,
    clear=1.0,
    for_s=30.0,
    action="lower_concurrency",
)


def make(rule: AlertRule = TIMEOUTS, **actions: ActionConfig) -> tuple[Observer, Figures, Clock, Governor]:
    clock, figs, gov = Clock(), Figures(timeouts_per_min=0.0), Governor(4, name="obs-unit")
    obs = Observer(config(rule, **actions), figures=figs, clock=clock, governors=lambda: [gov])
    return obs, figs, clock, gov


def firing(rule: str) -> float | None:
    return REGISTRY.get_sample_value("alina_alerts_firing", {"rule": rule})


def actions_total(action: str, result: str) -> float:
    return REGISTRY.get_sample_value("alina_alert_actions_total", {"action": action, "result": result}) or 0.0


async def test_fires_only_after_for_and_clears_only_past_the_clear_threshold() -> None:
    obs, figs, clock, gov = make()
    figs.values["timeouts_per_min"] = 5.0
    assert await obs.evaluate() == []  # bad, but not for 30s yet
    clock.now += 20
    assert await obs.evaluate() == [] and gov.limit == 4
    figs.values["timeouts_per_min"] = 0.0  # good again: the wait starts over
    clock.now += 20
    await obs.evaluate()
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    clock.now += 20
    figs.values["timeouts_per_min"] = None  # no data: the wait starts over too
    await obs.evaluate()
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    clock.now += 29
    assert await obs.evaluate() == []
    clock.now += 1
    assert await obs.evaluate() == ["fired:t_timeouts"]
    assert gov.limit == 1 and firing("t_timeouts") == 1.0
    figs.values["timeouts_per_min"] = 2.0  # below threshold, above clear: still firing (hysteresis)
    clock.now += 60
    assert await obs.evaluate() == [] and gov.limit == 1
    figs.values["timeouts_per_min"] = None  # no data changes nothing
    assert await obs.evaluate() == [] and gov.limit == 1
    figs.values["timeouts_per_min"] = 0.5
    assert await obs.evaluate() == ["cleared:t_timeouts"]
    assert gov.limit == 4 and firing("t_timeouts") == 0.0  # undone


async def test_rate_limit_stops_flapping_and_verify_records_recovery() -> None:
    obs, figs, clock, gov = make(TIMEOUTS.model_copy(update={"for_s": 0.0}))
    rate_limited = actions_total("lower_concurrency", "rate_limited")
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    first = obs.states["t_timeouts"].action
    assert first is not None and first.status == "applied"
    figs.values["timeouts_per_min"] = 0.0
    await obs.evaluate()
    assert first.recovered is True and first.status == "undone" and gov.limit == 4
    clock.now += 50  # fires again within min_interval_s (100s): alert yes, action no
    figs.values["timeouts_per_min"] = 5.0
    assert await obs.evaluate() == ["fired:t_timeouts"]
    second = obs.states["t_timeouts"].action
    assert second is not None and second.status == "rate_limited" and gov.limit == 4
    assert actions_total("lower_concurrency", "rate_limited") == rate_limited + 1
    figs.values["timeouts_per_min"] = 0.0
    await obs.evaluate()
    clock.now += 100  # the limit has passed: the action is taken again
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    third = obs.states["t_timeouts"].action
    assert third is not None and third.status == "applied" and gov.limit == 1
    for _ in range(2):  # verify_cycles=2 evaluations without recovery
        await obs.evaluate()
    assert third.recovered is False


async def test_undo_keeps_a_cap_someone_else_set_meanwhile() -> None:
    obs, figs, _, gov = make(TIMEOUTS.model_copy(update={"for_s": 0.0}))
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    gov.set_limit(2)  # an operator's choice
    figs.values["timeouts_per_min"] = 0.0
    await obs.evaluate()
    assert gov.limit == 2


async def test_approve_flow_pending_then_taken_then_undone() -> None:
    rule = AlertRule(
        name="t_quality",
        figure="evaluation_score",
        op="<",
        threshold=0.5,
        clear=0.6,
        for_s=0.0,
        action="fallback_model",
    )
    obs, figs, _, _ = make(rule, fallback_model=ActionConfig(approve=True, agents=["obs_agent"]))
    figs.values["evaluation_score"] = 0.3
    assert await obs.evaluate() == ["fired:t_quality"]
    rec = obs.states["t_quality"].action
    assert rec is not None and rec.status == "pending" and obs.actions.pending() == [rec]
    assert not prefers_fallback("obs_agent")  # nothing happens before an operator approves
    await obs.approve(rec.id)
    assert rec.status == "applied" and prefers_fallback("obs_agent")
    with pytest.raises(ValueError):
        await obs.approve(rec.id)
    figs.values["evaluation_score"] = 0.55  # between threshold and clear: still firing
    await obs.evaluate()
    assert prefers_fallback("obs_agent")
    figs.values["evaluation_score"] = 0.7
    await obs.evaluate()
    assert rec.status == "undone" and not prefers_fallback("obs_agent")


async def test_a_pending_action_is_cancelled_when_its_alert_clears() -> None:
    obs, figs, _, gov = make(
        TIMEOUTS.model_copy(update={"for_s": 0.0}), lower_concurrency=ActionConfig(approve=True, limit=1)
    )
    figs.values["timeouts_per_min"] = 5.0
    await obs.evaluate()
    rec = obs.states["t_timeouts"].action
    assert rec is not None and rec.status == "pending" and gov.limit == 4
    figs.values["timeouts_per_min"] = 0.0
    await obs.evaluate()
    assert rec.status == "cancelled" and gov.limit == 4
    with pytest.raises(ValueError):
        await obs.approve(rec.id)


async def test_safe_mode_without_a_system_mode_is_recorded_unavailable() -> None:
    rule = AlertRule(
        name="t_errors",
        figure="model_error_rate",
        threshold=0.5,
        clear=0.2,
        for_s=0.0,
        severity="critical",
        action="safe_mode",
    )
    obs, figs, _, _ = make(rule, safe_mode=ActionConfig())
    figs.values["model_error_rate"] = 0.9
    await obs.evaluate()
    rec = obs.states["t_errors"].action
    assert rec is not None and rec.status == "unavailable"


ALERTMANAGER: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="t_timeouts"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "alina",
    "groupLabels": {"alertname": "t_timeouts"},
    "commonLabels": {"alertname": "t_timeouts", "severity": "critical"},
    "commonAnnotations": {"summary": "model timeouts"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "t_timeouts", "severity": "critical", "instance": "alina:9464"},
            "annotations": {"summary": "model timeouts above 3/min"},
            "startsAt": "2026-01-01T00:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": "a1b2c3",
        },
        {"status": "firing", "labels": {"alertname": "NotOurs"}, "annotations": {}},
    ],
}


async def test_alertmanager_payload_drives_the_rule_and_its_undo() -> None:
    obs, figs, _, gov = make()
    got = await obs.handle_alertmanager(ALERTMANAGER)
    assert got == {"fired": ["t_timeouts"], "resolved": [], "ignored": ["NotOurs"]}
    assert gov.limit == 1 and obs.states["t_timeouts"].source == "alertmanager"
    await obs.evaluate()  # the local figure is fine, but Alertmanager owns this alert now
    assert gov.limit == 1
    assert (await obs.handle_alertmanager(ALERTMANAGER))["ignored"] == ["t_timeouts", "NotOurs"]
    one = {**ALERTMANAGER["alerts"][0], "status": "resolved", "endsAt": "2026-01-01T00:05:00Z"}
    resolved = {**ALERTMANAGER, "status": "resolved", "alerts": [one]}
    assert (await obs.handle_alertmanager(resolved))["resolved"] == ["t_timeouts"]
    assert gov.limit == 4 and firing("t_timeouts") == 0.0
    with pytest.raises(ValueError):
        await obs.handle_alertmanager({"version": "4"})


async def test_start_and_stop_run_the_evaluations_in_the_background() -> None:
    import asyncio

    obs, figs, _, gov = make(TIMEOUTS.model_copy(update={"for_s": 0.0}))
    obs.config.interval_s = 0.01
    figs.values["timeouts_per_min"] = 5.0
    obs.start()
    for _ in range(500):
        if gov.limit == 1:
            break
        await asyncio.sleep(0.01)
    await obs.stop()
    assert gov.limit == 1


def test_fallback_switch_is_per_agent() -> None:
    from alina.models import prefer_fallback

    prefer_fallback("obs_a", "test")
    assert prefers_fallback("obs_a") and not prefers_fallback("obs_b")
    assert clear_fallback_preference("obs_a") and not clear_fallback_preference("obs_a")


async def test_a_preferred_fallback_is_asked_first_and_the_primary_stays_a_backup() -> None:
    from alina.models import ModelUnreachableError, ResilientClient, prefer_fallback
    from tests.unit.test_resilience import ASK, Scripted

    primary, fallback = Scripted("primary", ["from primary"]), Scripted("fallback", ["from fallback"])
    client = ResilientClient("obs_fb", primary, fallback=fallback, governor=Governor(2, name="obs-fb"))
    prefer_fallback("obs_fb", "test")
    try:
        assert (await client.create(ASK)).content == "from fallback" and primary.attempts == 0
        fallback.steps = [ModelUnreachableError("down")]
        assert (await client.create(ASK)).content == "from primary"
    finally:
        clear_fallback_preference("obs_fb")
    assert (await client.create(ASK)).content == "from primary" and fallback.attempts == 2


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    assert histogram_quantile(0.95, [(1.0, 0), (float("inf"), 0)]) is None
    assert histogram_quantile(0.5, [(1.0, 10), (2.0, 20), (float("inf"), 20)]) == pytest.approx(1.0)
    assert histogram_quantile(0.75, [(1.0, 10), (2.0, 20), (float("inf"), 20)]) == pytest.approx(1.5)
    assert histogram_quantile(0.99, [(1.0, 10), (float("inf"), 20)]) == 1.0  # +Inf: the largest bound


def test_process_figures_are_differences_over_the_window() -> None:
    clock = Clock()
    figs = ProcessFigures(60.0, clock=clock)
    base = figs.read()
    assert base["timeouts_per_min"] == 0.0 and base["model_error_rate"] == 0.0
    for _ in range(3):
        metrics.observe_model_call("obs_fig", "scripted", "m", 0.3, outcome="timeout")
    metrics.observe_model_call("obs_fig", "scripted", "m", 0.3, 10, 5, outcome="ok")
    metrics.observe_evaluation("answer_check", "obs_fig", 0.4, "passed")
    metrics.MODEL_QUEUE_WAIT_SECONDS.labels(priority="chat").observe(2.0)
    clock.now += 30
    now = figs.read()
    assert now["timeouts_per_min"] == pytest.approx(3.0)
    assert now["model_error_rate"] == pytest.approx(0.75)
    assert now["tokens_per_hour"] == pytest.approx(15 * 60)
    assert now["evaluation_score"] == pytest.approx(0.4)
    assert now["model_p95_s"] is not None and 0.25 <= now["model_p95_s"] <= 0.5
    assert now["queue_wait_p95_s"] is not None and 1.0 <= now["queue_wait_p95_s"] <= 2.5
    assert now["rss_mb"] is not None and now["rss_mb"] > 0 and now["cpu_pct"] is not None
    clock.now += 62  # everything fell out of the window
    later = figs.read()
    assert later["timeouts_per_min"] == 0.0 and later["model_p95_s"] is None
    assert later["queue_wait_p95_s"] is None
    assert later["evaluation_score"] is None


def test_config_rejects_bad_hysteresis_duplicate_names_and_missing_actions() -> None:
    bad = AlertRule(name="x", figure="rss_mb", threshold=10.0, clear=20.0)
    with pytest.raises(ValidationError, match="hysteresis"):
        AlertsConfig(rules=[bad])
    ok = AlertRule(name="x", figure="rss_mb", threshold=10.0, clear=5.0)
    with pytest.raises(ValidationError, match="unique"):
        AlertsConfig(rules=[ok, ok])
    with pytest.raises(ValidationError, match="missing under alerts.actions"):
        AlertsConfig(rules=[ok.model_copy(update={"action": "halt"})], actions={})
    with pytest.raises(ValidationError):
        AlertRule(name="x", figure="disk_gb", threshold=1.0, clear=0.0)


async def test_stop_ends_the_loop_even_when_a_cycle_swallows_the_cancellation() -> None:
    """A refresh that eats the cancel (as Python 3.11's wait_for can when the awaited call ends
    at that moment) must not leave stop() waiting forever: the process would never exit."""
    import asyncio

    started = asyncio.Event()

    async def stubborn_refresh() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            pass  # swallowed

    obs = Observer(config(TIMEOUTS), figures=Figures(), refresh=stubborn_refresh)
    obs.config = obs.config.model_copy(update={"interval_s": 0.05})
    obs.start()
    await started.wait()
    await asyncio.wait_for(obs.stop(), timeout=5)  # returns: the loop saw it was being cancelled
