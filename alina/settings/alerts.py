"""The ``alerts:`` (rules and actions) and ``monitoring:`` sections of ``config.yaml``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from alina.settings._base import StrictModel as _Strict
from alina.settings.agents import ORCHESTRATOR

__all__ = ["ACTIONS", "FIGURES", "ActionConfig", "AlertRule", "AlertsConfig", "MonitoringConfig"]

FIGURES = (
    "model_error_rate",
    "model_p95_s",
    "timeouts_per_min",
    "queue_wait_p95_s",
    "tokens_per_hour",
    "cost_per_hour",
    "rss_mb",
    "cpu_pct",
    "evaluation_score",
    "paper_drawdown",
)
"""What an alert rule can watch; the observer computes each from this process (see
``alina.monitoring.observer.ProcessFigures``)."""
ACTIONS = ("lower_concurrency", "fallback_model", "safe_mode", "halt")


class AlertRule(_Strict):
    """One alert: fires when ``figure op threshold`` has held for ``for_s``; clears (and its
    action is undone) only once the figure is past ``clear`` the other way (hysteresis)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    """The rule's name: the alert's kind, and the Prometheus alert name in deploy/alerts.yml."""
    figure: Literal[FIGURES] = "model_error_rate"  # type: ignore[valid-type]
    """What the rule watches (see ``FIGURES``): a rate, p95, mean or level of this process."""
    op: Literal[">", "<"] = ">"
    """Fires when the figure is above (>) or below (<) the threshold."""
    threshold: float = Field(allow_inf_nan=False)
    """The value past which the rule starts to fire (after ``for_s``)."""
    clear: float = Field(allow_inf_nan=False)
    """The value past which, the other way, a firing rule clears (hysteresis)."""
    for_s: float = Field(60.0, ge=0, le=86400)
    """How long the figure must stay past the threshold before the rule fires."""
    severity: Literal["info", "warning", "critical"] = "warning"
    """Stored with the alert; a label in deploy/alerts.yml."""
    action: Literal[ACTIONS] | None = None  # type: ignore[valid-type]
    """What the observer does when the rule fires (a key of ``alerts.actions``); null: alert only."""


class ActionConfig(_Strict):
    """How one action may be taken: ``approve`` (wait for an operator) and a rate limit."""

    approve: bool = False
    """true: the action is recorded as pending until an operator approves it (``alina alerts approve ID``)."""
    min_interval_s: float = Field(300.0, ge=0, le=7 * 86400)
    """At least this long between two firings of this action (no flapping)."""
    limit: int = Field(1, ge=1, le=1024)
    """lower_concurrency: the governors' cap while the action holds."""
    agents: list[str] = Field(default_factory=lambda: [ORCHESTRATOR])
    """fallback_model: the agents moved to their fallback model while the action holds."""


def _default_rules() -> list[AlertRule]:
    return [
        AlertRule(
            name="model_timeouts",
            figure="timeouts_per_min",
            threshold=3.0,
            clear=1.0,
            for_s=60.0,
            action="lower_concurrency",
        ),
        AlertRule(
            name="model_latency",
            figure="model_p95_s",
            threshold=60.0,
            clear=30.0,
            for_s=120.0,
            action="lower_concurrency",
        ),
        AlertRule(
            name="model_errors",
            figure="model_error_rate",
            threshold=0.5,
            clear=0.2,
            for_s=60.0,
            severity="critical",
            action="safe_mode",
        ),
        AlertRule(
            name="answer_quality",
            figure="evaluation_score",
            op="<",
            threshold=0.5,
            clear=0.6,
            for_s=600.0,
            action="fallback_model",
        ),
        AlertRule(name="memory", figure="rss_mb", threshold=6144.0, clear=5120.0, for_s=300.0),
        AlertRule(name="cpu", figure="cpu_pct", threshold=180.0, clear=120.0, for_s=900.0),
        AlertRule(name="queue_wait", figure="queue_wait_p95_s", threshold=30.0, clear=10.0, for_s=300.0),
        AlertRule(name="tokens", figure="tokens_per_hour", threshold=2e6, clear=1.5e6, for_s=600.0),
        AlertRule(name="cost", figure="cost_per_hour", threshold=1.0, clear=0.8, for_s=600.0),
        AlertRule(
            name="paper_drawdown",
            figure="paper_drawdown",
            threshold=0.1,
            clear=0.05,
            for_s=60.0,
            severity="critical",
            action="safe_mode",
        ),
    ]


def _default_actions() -> dict[str, ActionConfig]:
    return {
        "lower_concurrency": ActionConfig(limit=1, min_interval_s=300.0),
        "fallback_model": ActionConfig(approve=True, min_interval_s=600.0),
        "safe_mode": ActionConfig(min_interval_s=600.0),
        "halt": ActionConfig(approve=True, min_interval_s=3600.0),
    }


class AlertsConfig(_Strict):
    """``alerts:`` — rules the observer evaluates in long-running processes, and the actions it
    may take (see README, "Alerts and actions")."""

    enabled: bool = True
    """false: no observer (no alerts, no actions)."""
    interval_s: float = Field(5.0, gt=0, le=3600)
    """How often the rules are evaluated."""
    window_s: float = Field(300.0, gt=0, le=86400)
    """Rates, percentiles and means are over this trailing window."""
    verify_cycles: int = Field(12, ge=1, le=10_000)
    """After an action, the figure must recover within this many evaluations or it is logged and
    counted as not_recovered."""
    rules: list[AlertRule] = Field(default_factory=_default_rules)
    """The alert rules (names unique)."""
    actions: dict[Literal[ACTIONS], ActionConfig] = Field(default_factory=_default_actions)  # type: ignore[valid-type]
    """How each action may be taken: lower_concurrency, fallback_model, safe_mode, halt."""

    @field_validator("rules")
    @classmethod
    def _rules_are_sound(cls, rules: list[AlertRule]) -> list[AlertRule]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique (repeated: {dupes})")
        for r in rules:
            if (r.op == ">" and r.clear > r.threshold) or (r.op == "<" and r.clear < r.threshold):
                raise ValueError(f"rule {r.name}: clear must be on the safe side of threshold (hysteresis)")
        return rules

    @model_validator(mode="after")
    def _actions_exist(self) -> AlertsConfig:
        missing = sorted({r.action for r in self.rules if r.action and r.action not in self.actions})
        if missing:
            raise ValueError(f"rules use actions missing under alerts.actions: {missing}")
        return self


class MonitoringConfig(_Strict):
    """``monitoring:`` — the metrics server (``alina chat --metrics-port``) and cost rates.

    The server serves ``GET /metrics`` (Prometheus text), ``GET /healthz`` and ``POST /alerts``
    (Alertmanager webhooks); see README, "Monitoring". The cost rates price model calls into
    ``alina_cost_estimated_total{agent,kind}``; 0.0 (the default) counts zero.
    """

    host: str = "127.0.0.1"
    """Address the metrics server binds to (loopback: only this machine can scrape)."""
    port: int = Field(9464, ge=1, le=65535)
    """Port of the metrics server when ``--metrics-port`` is not given."""
    run_totals_cache_s: float = Field(15.0, ge=0, le=3600, allow_inf_nan=False)
    """How long the totals of finished runs read from Postgres (``alina_store_*``) are reused
    between scrapes before the ``runs`` table is read again."""
    cost_per_1k_prompt_tokens: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Price of 1,000 prompt tokens in ``alina_cost_estimated_total``."""
    cost_per_1k_completion_tokens: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Price of 1,000 completion tokens."""
    cost_per_cpu_second: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Process CPU seconds since the previous model call are charged to the agent of that call."""
