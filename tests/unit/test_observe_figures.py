"""The series item 1 of the monitoring issue adds: agent turns, retries, paper figures, cost per
hour and drawdown as observer figures, the monitor's live line, the generated rule file."""

from __future__ import annotations

from typing import Any

import pytest
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.agents._factory import TimedAssistantAgent, build_agent
from alina.config import AlertsConfig, AlinaConfig
from alina.models import Governor, ModelTimeoutError, ResilientClient
from alina.monitoring import metrics
from alina.monitoring.observer import ProcessFigures
from alina.monitoring.report import live_figures_line
from alina.monitoring.rules import FIGURE_PROMQL, render_rules
from tests.scripted import INFO
from tests.unit.test_resilience import ASK, Scripted

get = metrics.REGISTRY.get_sample_value


def turns(agent: str, error: str = "") -> float:
    labels = {
        "gen_ai_agent_name": agent,
        "gen_ai_request_model": "smollm2-135m-instruct-q4_1",
        "error_type": error,
    }
    return get("gen_ai_invoke_agent_duration_seconds_count", labels) or 0.0


class Broken(ReplayChatCompletionClient):
    async def create(self, *args: Any, **kwargs: Any) -> Any:
        raise ModelTimeoutError("injected")


async def test_every_agent_turn_is_recorded_with_its_outcome() -> None:
    cfg = AlinaConfig()
    agent = build_agent("alina", cfg, ReplayChatCompletionClient(["Hello."], model_info=INFO))
    assert isinstance(agent, TimedAssistantAgent)
    before = turns("alina")
    result = await agent.run(task="hi")
    assert result.messages[-1].content == "Hello."
    assert turns("alina") == before + 1
    broken = build_agent("alina", cfg, Broken([], model_info=INFO))
    failed = turns("alina", "ModelTimeoutError")
    with pytest.raises(ModelTimeoutError):
        await broken.run(task="hi")
    assert turns("alina", "ModelTimeoutError") == failed + 1


async def test_retries_are_counted_by_reason() -> None:
    labels = {"agent": "t_retry", "reason": "timeout"}
    before = get("alina_model_retries_total", labels) or 0.0
    client = ResilientClient(
        "t_retry",
        Scripted("p", ["slow", "fine"], timeout_s=0.02),
        retries=1,
        governor=Governor(2, name="t-retry"),
    )
    await client.create(ASK)
    assert get("alina_model_retries_total", labels) == before + 1


async def test_paper_desk_exports_equity_pnl_and_drawdown() -> None:
    from alina.trading.desk import open_desk

    desk = await open_desk(AlinaConfig().trading)
    try:
        await desk.export_figures()
        account = metrics.safe_label(desk.exchange.id)
        equity = get("alina_paper_equity", {"account": account})
        assert equity is not None and equity > 0
        assert get("alina_paper_pnl", {"account": account, "kind": "total"}) is not None
        assert get("alina_paper_drawdown_ratio", {"account": account}) == 0.0
    finally:
        await desk.close()
    # drawdown is from the highest equity seen
    assert metrics.observe_paper("t_dd", {"equity": 100.0, "start_equity": 100.0}) == 0.0
    assert metrics.observe_paper("t_dd", {"equity": 120.0, "start_equity": 100.0}) == 0.0
    assert metrics.observe_paper("t_dd", {"equity": 90.0, "start_equity": 100.0}) == pytest.approx(0.25)


def test_cost_per_hour_and_paper_drawdown_are_observer_figures() -> None:
    clock = [1000.0]
    figs = ProcessFigures(600.0, clock=lambda: clock[0])
    figs.read()
    try:
        metrics.configure_costs(per_1k_prompt_tokens=1.0)
        metrics.observe_model_call("t_costfig", "p", "m", 0.1, prompt_tokens=1000, completion_tokens=0)
    finally:
        metrics.configure_costs()
    metrics.observe_paper("t_ddfig", {"equity": 50.0, "start_equity": 100.0})
    clock[0] += 60
    values = figs.read()
    assert values["cost_per_hour"] == pytest.approx(6.0)  # 1.0 in a 600 s window
    assert values["paper_drawdown"] is not None and values["paper_drawdown"] >= 0.5


def test_the_monitors_live_line_names_the_figures() -> None:
    metrics.ALERTS_FIRING.labels(rule="t_line").set(1)
    try:
        metrics.observe_paper("paper:t_line", {"equity": 80.0, "start_equity": 100.0, "total_pnl": -20.0})
        line = live_figures_line()
    finally:
        metrics.ALERTS_FIRING.labels(rule="t_line").set(0)
    assert line.startswith("figures since start: model calls ")
    assert "paper:t_line equity 80.00 PnL -20.00 drawdown 20.0%" in line
    assert "alerts firing: " in line and "t_line" in line.split("alerts firing: ")[1]


def test_rule_file_has_a_figure_for_every_figure_and_an_alert_per_rule() -> None:
    import yaml

    cfg = AlertsConfig()
    doc = yaml.safe_load(render_rules(cfg))
    records = {r["record"] for r in doc["groups"][0]["rules"]}
    assert records == {f"alina:figure:{f}" for f in FIGURE_PROMQL}
    alerts = [r for r in doc["groups"][1]["rules"]]
    assert [a["alert"] for a in alerts] == [r.name for r in cfg.rules]
    assert all(
        "[5m]" in e["expr"] or "[" not in e["expr"] or "[1m]" in e["expr"] for e in doc["groups"][0]["rules"]
    )


def test_every_series_the_monitoring_issue_lists_is_registered() -> None:
    import alina.memory_store.writer
    import alina.models._cache
    import alina.monitoring.memory_metrics
    import alina.monitoring.routing_metrics
    import alina.runtime.modes
    import alina.trading.desk  # noqa: F401

    wanted = {
        "gen_ai_client_operation_duration_seconds",
        "gen_ai_client_token_usage",
        "gen_ai_invoke_agent_duration_seconds",
        "gen_ai_execute_tool_duration_seconds",
        "alina_mode",
        "alina_model_calls_in_flight",
        "alina_governor_limit",
        "alina_model_queue_wait_seconds",
        "alina_model_retries",
        "alina_model_calls",
        "alina_cache_requests",
        "alina_routing_decisions",
        "alina_memory_retrieval_seconds",
        "alina_events_persisted",
        "alina_events_dropped",
        "alina_evaluation_score",
        "alina_alerts_firing",
        "alina_alert_actions",
        "alina_orders",
        "alina_risk_rejections",
        "alina_paper_equity",
        "alina_paper_pnl",
        "alina_paper_drawdown_ratio",
        "process_cpu_seconds",
        "process_resident_memory_bytes",
        "alina_cost_estimated",
    }
    registered = {fam.name for fam in metrics.REGISTRY.collect()}
    assert wanted <= registered, wanted - registered


async def test_paper_refresh_is_throttled_and_bounded() -> None:
    import asyncio

    from alina.monitoring.live import paper_refresh

    class Desk:
        calls = 0

        async def export_figures(self) -> None:
            Desk.calls += 1
            await asyncio.sleep(10)  # a slow live feed

    desk = Desk()

    async def opener() -> Desk:  # the application's desk opener (Alina.desk)
        return desk

    refresh = paper_refresh(opener, every_s=3600, timeout_s=0.01)
    await refresh()  # gives up after timeout_s
    await refresh()  # within every_s: skipped
    assert Desk.calls == 1
    await paper_refresh(None)()  # no desk in this application: nothing to do

    async def broken() -> Desk:
        raise ConnectionError("exchange away")

    await paper_refresh(broken)()  # a desk that cannot open is logged, never raised


def test_every_observer_figure_has_its_promql_twin() -> None:
    from alina.config import FIGURES

    assert set(FIGURE_PROMQL) == set(FIGURES)
