"""A real Prometheus (Debian's, installed by scripts/setup.sh) checks and evaluates deploy/.

``promtool`` validates deploy/prometheus.yml and deploy/alerts.yml; a Prometheus on loopback
scrapes a metrics server in this test process after scripted calls, and every recording rule
and dashboard query must return a result (polled against a deadline, timings not asserted).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from alina.monitoring.server import MetricsServer
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


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:  # loopback only
        return json.loads(r.read())


@pytest.fixture
def prometheus(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[tuple[str, int]]:
    """A Prometheus on a free loopback port that scrapes 127.0.0.1:<target port> every second and
    evaluates deploy/alerts.yml; yields (its base URL, the target port)."""
    target, port = free_port(), free_port()
    shutil.copy(DEPLOY / "alerts.yml", tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "alina", "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}", target
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def _result(base: str, expr: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = await asyncio.to_thread(_get, url)
    except OSError:
        return []  # not up yet
    assert body["status"] == "success", body
    return body["data"]["result"]


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
                if await _result(base, expr):
                    del pending[name]
            await asyncio.sleep(0.5)
        assert not pending, f"no data within {DEADLINE_S}s for: {sorted(pending)}"
        rules = await asyncio.to_thread(_get, f"{base}/api/v1/rules")
    health = {r["name"]: r["health"] for g in rules["data"]["groups"] for r in g["rules"]}
    evaluated = {
        r["name"]: not r["lastEvaluation"].startswith("0001")
        for g in rules["data"]["groups"]
        for r in g["rules"]
    }
    assert all(evaluated.values()), evaluated
    assert set(health) == set(rule_exprs())
    assert all(h == "ok" for h in health.values()), health
