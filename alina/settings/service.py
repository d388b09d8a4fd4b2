"""``serve:`` and ``jobs:`` of config.yaml: the always-on process, its workers and its schedule.

Kept out of ``alina.config`` (which only embeds these models) so the service's settings live
beside the code that reads them. Cron expressions are checked with croniter (the parser the job
engine itself uses); an interval (``every_s``) is turned into the equivalent cron expression, so
the engine's own scheduler runs both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from alina.settings._base import StrictModel as _Strict

__all__ = [
    "JOB_KINDS",
    "PRIORITY_RANK",
    "QueuePriority",
    "RunMode",
    "JobConfig",
    "ServeConfig",
    "default_jobs",
    "interval_cron",
    "jobs_problems",
]

JobKind = Literal["team", "review", "reconcile", "retention"]
JOB_KINDS: tuple[str, ...] = ("team", "review", "reconcile", "retention")
QueuePriority = Literal["risk", "trading", "monitoring", "chat", "optimization"]
RunMode = Literal["normal", "safe"]
"""The modes a run may be started in (``safe``: read and report only, no order reaches the trader)."""

PRIORITY_RANK: dict[str, int] = {"risk": 40, "trading": 30, "monitoring": 20, "chat": 10, "optimization": 0}
"""Queue priority of a job (higher runs first), by the governor's priority class names."""


class ServeConfig(_Strict):
    """``serve:`` — `alina serve` (schedule + worker + observer + metrics) and `alina worker`."""

    concurrency: int = Field(2, ge=1, le=64)
    """Team runs (jobs) one process runs at once; model calls still obey the cap."""
    grace_s: float = Field(30.0, gt=0, le=3600)
    """On SIGTERM: stop taking jobs, let each run finish its current turn, exit 0 within this."""
    host: str = "127.0.0.1"
    """Where `alina serve` serves /healthz, /metrics and POST /alerts (loopback by default)."""
    port: int | None = Field(None, ge=1, le=65535)
    """null: monitoring.port."""
    heartbeat_s: float = Field(5.0, gt=0, le=600)
    """How often a process tells the queue it is alive."""
    stalled_after_s: float = Field(30.0, gt=0, le=86400)
    """A job whose process sent no heartbeat for this long is retried elsewhere (its run
    resumes from its last checkpoint). Keep it several times heartbeat_s."""
    misfire_grace_s: float = Field(60.0, gt=0, le=86400)
    """An occurrence starting later than this after its scheduled time is late (see misfire)."""
    catch_up_s: float = Field(86400.0, gt=0, le=30 * 86400)
    """How far back a starting process looks for an occurrence nobody enqueued (misfire: once)."""
    max_attempts: int = Field(10, ge=1, le=1000)
    """Attempts of one job (kills, shutdowns, a run busy elsewhere) before it is given up."""
    poll_s: float = Field(2.0, gt=0, le=60)
    """Queue polling interval besides Postgres LISTEN/NOTIFY."""
    queue: str = Field("alina", min_length=1, max_length=63)
    """Queue name in the job tables (separate deployments sharing a database use different ones)."""

    @model_validator(mode="after")
    def _heartbeats_fit(self) -> ServeConfig:
        if self.stalled_after_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"stalled_after_s must be at least twice heartbeat_s (got {self.stalled_after_s:g} "
                f"and {self.heartbeat_s:g}): a live process would be taken for dead"
            )
        return self


class JobConfig(_Strict):
    """One scheduled job under ``jobs:`` (its key is its name)."""

    kind: JobKind = "team"
    """team: a team run of ``task``; review: the optimizer's prompt review; reconcile: order
    intents against the exchange; retention: prune history (``retention:``)."""
    cron: str | None = None
    """Cron expression in UTC (5 fields, or 6 with seconds last), e.g. "0 * * * *" hourly."""
    every_s: int | None = Field(None, ge=1, le=86400)
    """Or an interval in seconds that divides a minute, an hour or a day evenly."""
    task: str | None = None
    """team: the task text."""
    priority: QueuePriority = "chat"
    """Queue priority (risk > trading > monitoring > chat > optimization)."""
    mode: RunMode = "normal"
    """team: safe = read and report only for this run, whatever the system mode."""
    models: dict[str, str] = Field(default_factory=dict)
    """team: agent -> model key (under models:) for this job's runs."""
    misfire: Literal["skip", "once"] = "once"
    """An occurrence that could not start on time (everything down, the previous one still
    running): once = run it late, once (missed occurrences collapse into one); skip = drop it."""
    enabled: bool = True
    """false: the job is not scheduled."""

    def cron_expression(self) -> str:
        """The cron expression the queue schedules (``every_s`` converted)."""
        if self.cron is not None:
            return self.cron
        if self.every_s is None:
            raise ValueError("a job needs cron or every_s (jobs_problems reports it when the config loads)")
        return interval_cron(self.every_s)


def interval_cron(every_s: int) -> str:
    """The cron expression (seconds as 6th field) firing every ``every_s`` seconds, aligned to
    the minute, hour or day; ValueError when the interval does not divide one evenly."""
    if every_s < 60 and 60 % every_s == 0:
        return f"* * * * * */{every_s}"
    if every_s % 60 == 0 and every_s < 3600 and 60 % (every_s // 60) == 0:
        return f"*/{every_s // 60} * * * *"
    if every_s % 3600 == 0 and every_s < 86400 and 24 % (every_s // 3600) == 0:
        return f"0 */{every_s // 3600} * * *"
    if every_s == 86400:
        return "0 0 * * *"
    raise ValueError(
        "must divide a minute, an hour or a day evenly (e.g. 10, 30, 300, 3600, 21600); "
        f"use cron for other schedules (got {every_s})"
    )


def default_jobs() -> dict[str, JobConfig]:
    """The shipped schedule: the optimizer review hourly, order reconciliation every 5 minutes,
    retention daily at 03:30 UTC."""
    return {
        "optimizer_review": JobConfig(kind="review", cron="0 * * * *", priority="optimization"),
        "order_reconcile": JobConfig(kind="reconcile", every_s=300, priority="trading"),
        "retention": JobConfig(kind="retention", cron="30 3 * * *", priority="optimization", misfire="skip"),
    }


def jobs_problems(jobs: dict[str, JobConfig], models: set[str], agents: set[str]) -> list[str]:
    """Cross-field problems of ``jobs:`` as ``jobs.NAME.field: what (got X)`` lines."""
    from croniter import croniter

    problems: list[str] = []
    for name, job in jobs.items():
        where = f"jobs.{name}"
        if not name.replace("_", "").replace("-", "").isalnum() or len(name) > 60:
            problems.append(f"{where}: a job name is letters, digits, - and _ (at most 60) (got {name!r})")
        if (job.cron is None) == (job.every_s is None):
            problems.append(
                f"{where}: give exactly one of cron or every_s (got cron={job.cron!r}, "
                f"every_s={job.every_s!r})"
            )
        elif job.cron is not None and not croniter.is_valid(job.cron):
            problems.append(f"{where}.cron: not a valid cron expression (got {job.cron!r})")
        elif job.every_s is not None:
            try:
                interval_cron(job.every_s)
            except ValueError as exc:
                problems.append(f"{where}.every_s: {exc}")
        if job.kind == "team" and not (job.task or "").strip():
            problems.append(f"{where}.task: a team job needs the task text (got {job.task!r})")
        if job.kind != "team" and (job.task or job.models or job.mode != "normal"):
            problems.append(f"{where}: task, models and mode are for team jobs (got kind {job.kind!r})")
        for agent, model in job.models.items():
            if agent not in agents:
                problems.append(
                    f"{where}.models.{agent}: unknown agent; known: {sorted(agents)} (got {agent!r})"
                )
            if model not in models:
                problems.append(
                    f"{where}.models.{agent}: no model of that name under models: "
                    f"{sorted(models)} (got {model!r})"
                )
    return problems
