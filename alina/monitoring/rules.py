"""deploy/alerts.yml, generated from the ``alerts:`` config: the deployment's Prometheus fires the
same rules the in-process observer does, under the same names.

Each figure the observer computes (:class:`alina.monitoring.observer.ProcessFigures`) has a
PromQL twin over the same window, kept as a recording rule ``alina:figure:<figure>``; each
config rule becomes an alert named like the rule (so an Alertmanager webhook for it, ``POST
/alerts``, drives that rule's action) with its threshold, ``for`` and severity. Hysteresis is
the observer's too: once firing, the alert holds while the figure is still past ``clear``
(``... or (figure > clear and on() ALERTS{alertname=...,alertstate="firing"})``).

``alina alerts rules`` prints the file; a test keeps deploy/alerts.yml equal to it.
"""

from __future__ import annotations

from typing import Any

import yaml

from alina.config import FIGURES, AlertsConfig

__all__ = ["FIGURE_PROMQL", "render_rules", "rule_groups"]

_FAILED = "timeout|unreachable|malformed|overflow|error"
_ATTEMPTS = f"ok|repaired|fallback|{_FAILED}"
_PROC = '{job=~"alina.*"}'

FIGURE_PROMQL: dict[str, str] = {
    "model_error_rate": (
        f'sum by (instance) (rate(alina_model_calls_total{{outcome=~"{_FAILED}"}}[W]))'
        f' / sum by (instance) (rate(alina_model_calls_total{{outcome=~"{_ATTEMPTS}"}}[W]))'
    ),
    "model_p95_s": (
        "histogram_quantile(0.95, sum by (instance, le) (rate(alina_model_call_seconds_bucket[W])))"
    ),
    "timeouts_per_min": '60 * sum by (instance) (rate(alina_model_calls_total{outcome="timeout"}[W]))',
    "queue_wait_p95_s": (
        "histogram_quantile(0.95, sum by (instance, le) (rate(alina_model_queue_wait_seconds_bucket[W])))"
    ),
    "tokens_per_hour": "3600 * sum by (instance) (rate(alina_tokens_total[W]))",
    "cost_per_hour": "3600 * sum by (instance) (rate(alina_cost_estimated_total[W]))",
    "rss_mb": f"max by (instance) (process_resident_memory_bytes{_PROC}) / 1048576",
    "cpu_pct": f"100 * max by (instance) (rate(process_cpu_seconds_total{_PROC}[1m]))",
    "evaluation_score": (
        "sum by (instance) (rate(alina_evaluation_score_sum[W]))"
        " / sum by (instance) (rate(alina_evaluation_score_count[W]))"
    ),
    "paper_drawdown": "max by (instance) (alina_paper_drawdown_ratio)",
}
"""The PromQL of each observer figure; ``W`` is replaced by the window (``alerts.window_s``)."""

# Rules that watch what only Prometheus sees (several instances, the mode across processes);
# they have no in-process twin and no action: they are for people.
_EXTRA_ALERTS: list[dict[str, Any]] = [
    {
        "alert": "AlinaModeNotNormal",
        "expr": 'max by (instance, mode) (alina_mode{mode!="normal"}) == 1',
        "for": "1m",
        "labels": {"severity": "critical"},
        "annotations": {"summary": "{{ $labels.instance }} runs in mode {{ $labels.mode }}"},
    },
    {
        "alert": "AlinaToolErrorRateHigh",
        "expr": (
            'sum by (gen_ai_tool_name) (rate(gen_ai_execute_tool_duration_seconds_count{error_type!=""}[5m]))'
            " / sum by (gen_ai_tool_name) (rate(gen_ai_execute_tool_duration_seconds_count[5m])) > 0.5"
        ),
        "for": "10m",
        "labels": {"severity": "warning"},
        "annotations": {"summary": "More than half the calls of tool {{ $labels.gen_ai_tool_name }} fail"},
    },
]


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m" if s % 60 == 0 and s else f"{s}s"


def rule_groups(cfg: AlertsConfig) -> dict[str, Any]:
    """The rule file as a dict: a recording rule per figure, an alert per config rule."""
    window = _duration(cfg.window_s)
    records = [
        {"record": f"alina:figure:{fig}", "expr": FIGURE_PROMQL[fig].replace("[W]", f"[{window}]")}
        for fig in FIGURES
    ]
    alerts = []
    for r in cfg.rules:
        fig = f"alina:figure:{r.figure}"
        firing = f'on(instance) ALERTS{{alertname="{r.name}", alertstate="firing"}}'
        alerts.append(
            {
                "alert": r.name,
                "expr": f"{fig} {r.op} {r.threshold:g} or ({fig} {r.op} {r.clear:g} and {firing})",
                "for": _duration(r.for_s),
                "labels": {"severity": r.severity},
                "annotations": {
                    "summary": f'{r.figure} {{{{ $value | printf "%.4g" }}}} {r.op} {r.threshold:g} '
                    f"(clears past {r.clear:g}); action: {r.action or 'none'}",
                },
            }
        )
    return {
        "groups": [
            {"name": "alina-figures", "rules": records},
            {"name": "alina-alerts", "rules": alerts},
            {"name": "alina-extra", "rules": _EXTRA_ALERTS},
        ]
    }


HEADER = """\
# Alert rules for AgentAlina. GENERATED from the `alerts:` section of config.yaml by
# `alina alerts rules > deploy/alerts.yml` - edit the config, not this file (a test keeps them equal).
# alina:figure:* are the observer's figures in PromQL; each alert is named like its config rule, so
# Alertmanager's webhook (POST /alerts on alina) drives the same action the observer would take.
"""


def render_rules(cfg: AlertsConfig) -> str:
    """deploy/alerts.yml for ``cfg``."""
    return HEADER + yaml.safe_dump(rule_groups(cfg), sort_keys=False, width=200)
