"""The deploy files name only series AgentAlina exports, and the metrics server's routes work."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
import yaml

from alina.monitoring import metrics
from alina.monitoring.server import MetricsServer
from tests.monitoring._scripted import SECRET, promql_metric_names, registry_sample_names, scripted_calls

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def rule_exprs() -> dict[str, str]:
    """``{record or alert name: expr}`` from deploy/alerts.yml."""
    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return {r.get("record") or r["alert"]: r["expr"] for g in doc["groups"] for r in g["rules"]}


def dashboard_exprs() -> list[str]:
    doc = json.loads((DEPLOY / "grafana/dashboards/alina.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_promql_metric_names_skips_functions_labels_and_keywords() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, m) (rate(x_bucket{a!="b c"}[5m]))) / on(m) y_total > 3'
    assert promql_metric_names(expr) == {"x_bucket", "y_total"}


async def test_every_metric_in_the_alert_rules_and_dashboard_exists() -> None:
    await scripted_calls()
    exported = registry_sample_names()
    rules = rule_exprs()
    recorded = {name for name in rules if ":" in name} | {"ALERTS"}  # ALERTS: Prometheus's own series
    for name, expr in rules.items():
        missing = promql_metric_names(expr) - exported - recorded
        assert not missing, f"{name} names unknown series {missing}"
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        missing = promql_metric_names(expr) - exported
        assert not missing, f"dashboard query {expr!r} names unknown series {missing}"


def test_prometheus_config_loads_the_alert_rules_and_scrapes_alina() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert jobs["alina"]["static_configs"][0]["targets"] == ["alina-serve:9464"]
    assert "alina-workers" in jobs
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"


async def test_gen_ai_series_are_recorded_with_the_alina_ones() -> None:
    await scripted_calls(agent="t_genai")
    chat = {
        "gen_ai_operation_name": "chat",
        "gen_ai_provider_name": "llamacpp",
        "gen_ai_request_model": "smollm2-135m-instruct-q4_1",
    }
    get = metrics.REGISTRY.get_sample_value
    assert get("gen_ai_client_operation_duration_seconds_count", {**chat, "error_type": ""}) >= 1
    assert get("gen_ai_client_operation_duration_seconds_count", {**chat, "error_type": "timeout"}) >= 1
    assert get("gen_ai_client_token_usage_sum", {**chat, "gen_ai_token_type": "input"}) >= 120
    assert get("gen_ai_client_token_usage_sum", {**chat, "gen_ai_token_type": "output"}) >= 30
    tool = {"gen_ai_tool_name": "always_fail", "gen_ai_tool_type": "function", "gen_ai_agent_name": "t_genai"}
    assert get("gen_ai_execute_tool_duration_seconds_count", {**tool, "error_type": "error"}) == 1
    assert get("alina_cost_estimated_total", {"agent": "t_genai", "kind": "prompt"}) == 0.0
    assert get("process_resident_memory_bytes") > 0


def test_cost_follows_the_configured_rates() -> None:
    get = metrics.REGISTRY.get_sample_value
    try:
        metrics.configure_costs(per_1k_prompt_tokens=2.0, per_1k_completion_tokens=4.0)
        metrics.observe_model_call("t_cost", "llamacpp", "m", 0.1, prompt_tokens=500, completion_tokens=250)
    finally:
        metrics.configure_costs()
    assert get("alina_cost_estimated_total", {"agent": "t_cost", "kind": "prompt"}) == pytest.approx(1.0)
    assert get("alina_cost_estimated_total", {"agent": "t_cost", "kind": "completion"}) == pytest.approx(1.0)
    assert get("alina_cost_estimated_total", {"agent": "t_cost", "kind": "cpu"}) == 0.0


async def test_server_serves_metrics_health_and_alerts() -> None:
    received: list[dict] = []

    async def handler(payload: dict) -> None:
        if payload.get("boom"):
            raise RuntimeError("handler failed")
        received.append(payload)

    await scripted_calls(agent="t_server")
    async with MetricsServer(port=0, on_alerts=handler) as srv, aiohttp.ClientSession() as http:
        assert srv.host == "127.0.0.1" and srv.port > 0
        async with http.get(f"{srv.url}/metrics") as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        assert 'alina_model_calls_total{agent="t_server"' in text
        assert "gen_ai_client_operation_duration_seconds_bucket" in text
        async with http.get(f"{srv.url}/healthz") as r:
            health = await r.json()
        assert health["ok"] is True and health["mode"] == "normal" and health["uptime_s"] >= 0
        webhook = {
            "version": "4",
            "status": "firing",
            "alerts": [{"labels": {"alertname": "AlinaModeNotNormal"}}],
        }
        async with http.post(f"{srv.url}/alerts", json=webhook) as r:
            assert r.status == 200
        assert received == [webhook]
        async with http.post(f"{srv.url}/alerts", data=b"{not json") as r:
            assert r.status == 400
        async with http.post(f"{srv.url}/alerts", json=[1, 2]) as r:
            assert r.status == 400
        async with http.post(f"{srv.url}/alerts", json={"boom": True}) as r:
            assert r.status == 500
        srv.on_alerts = None
        async with http.post(f"{srv.url}/alerts", json=webhook) as r:
            assert r.status == 503
    assert received == [webhook]


async def test_no_label_value_carries_arguments_or_secrets() -> None:
    await scripted_calls(agent="t_secret")  # a tool call whose arguments hold a key-shaped string
    async with MetricsServer(port=0) as srv, aiohttp.ClientSession() as http:
        async with http.get(f"{srv.url}/metrics") as r:
            text = await r.text()
    assert 'gen_ai_tool_name="lookup_price"' in text
    assert SECRET not in text and SECRET[:12] not in text
    assert "BTC/USDT" not in text  # argument values (message content) never become labels


async def test_readme_monitoring_names_only_exported_series() -> None:
    import re

    from alina.monitoring.server import RunTotalsCollector

    await scripted_calls()
    readme = (DEPLOY.parent / "README.md").read_text()
    section = readme.split("### Monitoring", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:gen_ai|alina_cost|alina_store|process)_[a-z_]+)", section))
    assert "gen_ai_client_token_usage" in named
    exported = {m.name for m in metrics.REGISTRY.collect()} | registry_sample_names()
    exported |= {
        m.name
        for m in RunTotalsCollector("postgresql://x@127.0.0.1:1/x", 0, 1)._families(
            [("completed", 1, 1, 1, 1, 1)]
        )
    } | {"alina_store_up"}
    exported |= {n + "_total" for n in exported}
    labels = {k for fam in metrics.REGISTRY.collect() for smp in fam.samples for k in smp.labels}
    named -= labels  # label names (gen_ai_request_model...) are checked by the series tests
    assert {"gen_ai_client_token_usage", "alina_store_up", "alina_cost_estimated_total"} <= named
    assert named <= exported, named - exported


def test_alert_rules_file_is_generated_from_the_config() -> None:
    """deploy/alerts.yml mirrors the in-process rules: one alert per config rule, same name (so
    Alertmanager's webhook reaches the same action), threshold, for and severity."""
    from alina.config import AlertsConfig, load_config
    from alina.monitoring.rules import render_rules

    cfg = load_config(DEPLOY.parent / "config.yaml", environ={})
    assert (DEPLOY / "alerts.yml").read_text() == render_rules(cfg.alerts), (
        "deploy/alerts.yml is stale: run `alina alerts rules > deploy/alerts.yml`"
    )
    assert [r.model_dump() for r in cfg.alerts.rules] == [r.model_dump() for r in AlertsConfig().rules]
    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    alerts = {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}
    for rule in cfg.alerts.rules:
        a = alerts[rule.name]
        assert a["labels"]["severity"] == rule.severity
        assert a["expr"].startswith(f"alina:figure:{rule.figure} {rule.op} {rule.threshold:g} or ")
        assert f'{rule.op} {rule.clear:g} and on(instance) ALERTS{{alertname="{rule.name}"' in a["expr"]


def test_alina_alerts_rules_prints_the_rule_file() -> None:
    import subprocess
    import sys

    p = subprocess.run(
        [sys.executable, "-m", "alina", "alerts", "rules", "--config", str(DEPLOY.parent / "config.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == (DEPLOY / "alerts.yml").read_text()
