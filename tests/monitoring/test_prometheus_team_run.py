"""A real Prometheus scrapes a real ``alina serve`` while it runs a real team run on the embedded
model, and every dashboard panel's query and every rule of deploy/alerts.yml then has data.

Nothing here fills a series by hand. The team run is an ordinary submitted task; what makes the
rarer series exist is configuration a user could write:

* the optimizer's model has a deadline no call can meet (``timeout_s`` far below one prefill),
  one retry and the embedded model as fallback: timeouts, retries and fallbacks are real;
* the optimizer's only tool is a skill plugin whose probe raises: a real tool error;
* the trader's only tool is ``place_order`` (``skills.enabled``), so the run places a paper
  order: the paper account's gauges;
* cost rates are set, and one alert rule fires on any token use, with an automatic action:
  alerts firing and actions taken.

The dashboard queries and rules are read from deploy/ (no hand-kept list); deadlines bound the
polling, no timing is asserted.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.monitoring._prometheus import prometheus_get, query_result
from tests.monitoring.test_deploy_files import dashboard_exprs, rule_exprs
from tests.service import _procs as P

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("promtool")),
        reason="prometheus/promtool missing: run scripts/setup.sh",
    ),
]

TASK = "Check the system health, then buy 0.001 BTC/USDT, then score the summary."
PLUGIN = '''
def broken_probe(question: str) -> str:
    """Probe the answer store (always fails: the test's injected tool fault).

    Args:
        question: what to probe
    """
    raise RuntimeError("injected tool failure")


def register(skills):
    skills.add(broken_probe, agents=["optimizer"], timeout_s=5)
'''


def _config(tmp: Path, dsn: str, pg: Any, redis: Any) -> Path:
    (tmp / "plugins").mkdir()
    (tmp / "plugins" / "probe.py").write_text(PLUGIN)
    cfg = {
        "paths": {"data_dir": str(tmp / "data")},
        "postgres": {"port": pg.port, "database": psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]},
        "redis": {"port": redis.port},
        "models": {
            "embedded": {},
            # no call meets this deadline: the optimizer's calls time out, are retried once, then
            # its fallback (the embedded model) answers
            "hurried": {"timeout_s": 0.01, "retries": 1, "fallback": "embedded"},
        },
        "agents": {
            "alina": {"model": "embedded"},
            "trader": {"model": "embedded"},
            "monitor": {"model": "embedded"},
            "optimizer": {"model": "hurried"},
        },
        "skills": {
            "plugin_dir": str(tmp / "plugins"),
            "enabled": ["place_order", "system_health", "broken_probe"],
        },
        "team": {"max_turns": 8},
        "memory": {"enabled": False},
        "cache": {"enabled": False},
        "monitoring": {
            "cost_per_1k_prompt_tokens": 0.001,
            "cost_per_1k_completion_tokens": 0.002,
            "cost_per_cpu_second": 0.0001,
        },
        "alerts": {
            "interval_s": 0.5,
            "window_s": 120.0,
            "verify_cycles": 2,
            "rules": [
                {
                    "name": "any_tokens",
                    "figure": "tokens_per_hour",
                    "threshold": 1.0,
                    "clear": 0.5,
                    "for_s": 0.0,
                    "action": "lower_concurrency",
                }
            ],
            "actions": {"lower_concurrency": {"approve": False, "min_interval_s": 1.0, "limit": 1}},
        },
        "jobs": {
            "optimizer_review": {"kind": "review", "cron": "0 * * * *", "enabled": False},
            "order_reconcile": {"kind": "reconcile", "every_s": 300, "enabled": False},
            "retention": {"kind": "retention", "cron": "30 3 * * *", "enabled": False},
        },
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_after_a_real_team_run_every_panel_and_rule_has_data(
    tmp_path: Path, fresh_pg_dsn: str, pg_service: Any, redis_service: Any, prometheus: Any
) -> None:
    base, target = prometheus
    config = _config(tmp_path, fresh_pg_dsn, pg_service, redis_service)
    serve = P.alina("serve", config, tmp_path / "serve.log", "--port", str(target))
    try:
        serve.wait_for(" ready: ", 180)
        run_id = P.submit(config, TASK)
        P.wait_runs_done(fresh_pg_dsn, [run_id], timeout=600)
        with psycopg.connect(fresh_pg_dsn) as conn:
            status = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
            speakers = {
                r[0] for r in conn.execute("SELECT source FROM messages WHERE run_id = %s", (run_id,))
            }
            fired = conn.execute("SELECT count(*) FROM alerts WHERE kind = 'any_tokens'").fetchone()
        assert status is not None and status[0] == "completed", (status, serve.text()[-3000:])
        assert {"monitor", "trader", "optimizer", "alina"} <= speakers, speakers

        queries = {f"rule {n}": e for n, e in rule_exprs().items() if ":" in n}
        queries |= {f"panel {e}": e for e in dashboard_exprs()}
        pending = dict(queries)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            for name, expr in list(pending.items()):
                if query_result(base, expr):
                    del pending[name]
            time.sleep(1.0)
        assert not pending, f"no data after a real team run for: {sorted(pending)}\n{serve.text()[-3000:]}"
        rules = prometheus_get(f"{base}/api/v1/rules")
        health = {r["name"]: r["health"] for g in rules["data"]["groups"] for r in g["rules"]}
        assert set(health) == set(rule_exprs())
        assert all(h == "ok" for h in health.values()), health
        assert fired is not None and fired[0] >= 1  # the in-process observer stored its alert
    finally:
        assert serve.term(30) == 0, serve.text()[-3000:]
