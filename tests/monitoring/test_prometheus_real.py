"""A real Prometheus (Debian's, installed by scripts/setup.sh) checks and evaluates deploy/.

``promtool`` validates deploy/prometheus.yml and deploy/alerts.yml; a Prometheus on loopback
scrapes a metrics server in this test process after scripted calls, and every recording rule
and dashboard query must return a result (polled against a deadline, timings not asserted).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest

from alina.monitoring.server import MetricsServer
from tests.monitoring._prometheus import prometheus_get, query_result
from tests.monitoring._scripted import scripted_calls
from tests.monitoring.test_deploy_files import DEPLOY, dashboard_exprs, rule_exprs

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="prometheus/promtool missing: run scripts/setup.sh",
    ),
]

DEADLINE_S = 90.0


@pytest.mark.parametrize(("what", "path"), [("config", "prometheus.yml"), ("rules", "alerts.yml")])
def test_promtool_accepts_the_deploy_files(what: str, path: str) -> None:
    out = subprocess.run(
        ["promtool", "check", what, path], cwd=DEPLOY, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


async def test_prometheus_scrapes_alina_and_every_rule_and_panel_query_has_data(prometheus) -> None:
    base, target = prometheus
    await scripted_calls(agent="t_prom")
    # recording rules and panel queries must return data; alerts (thresholds not crossed here)
    # must be evaluated without error, which /api/v1/rules reports as health "ok"
    queries = [(n, e) for n, e in rule_exprs().items() if ":" in n] + [
        (f"panel {e}", e) for e in dashboard_exprs()
    ]
    async with MetricsServer(port=target):
        pending = dict(queries)
        deadline = time.monotonic() + DEADLINE_S
        while pending and time.monotonic() < deadline:
            for name, expr in list(pending.items()):
                if await asyncio.to_thread(query_result, base, expr):
                    del pending[name]
            await asyncio.sleep(0.5)
        assert not pending, f"no data within {DEADLINE_S}s for: {sorted(pending)}"
        rules = await asyncio.to_thread(prometheus_get, f"{base}/api/v1/rules")
    health = {r["name"]: r["health"] for g in rules["data"]["groups"] for r in g["rules"]}
    evaluated = {
        r["name"]: not r["lastEvaluation"].startswith("0001")
        for g in rules["data"]["groups"]
        for r in g["rules"]
    }
    assert all(evaluated.values()), evaluated
    assert set(health) == set(rule_exprs())
    assert all(h == "ok" for h in health.values()), health
