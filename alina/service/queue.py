"""The job queue: a Procrastinate app on our own Postgres, its tasks, its schema, and submitting.

Two tasks carry all the work:

* ``alina.team_run`` — one team run (submitted with :func:`submit` / `alina submit`): the run id
  is chosen when it is enqueued, so a retry of the job (its process was killed, shut down, or the
  run was busy elsewhere) resumes that same run from its last checkpoint.
* ``alina.scheduled`` — one occurrence of a job of ``jobs:``. Every serve and worker process
  registers each enabled job as a Procrastinate *periodic* task; Procrastinate records each
  (job, scheduled time) it enqueues, so however many processes run, an occurrence is enqueued
  once. ``queueing_lock`` keeps at most one occurrence of a job waiting and ``lock`` at most one
  running; our own ``job_occurrences`` table (unique per job and time) is the second check.

Exactly-once *execution* after a crash comes from the run itself: a team run resumes from its
checkpoint under its per-run advisory lock, and orders carry deterministic request ids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from typing import Any

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate import exceptions as pexc
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from alina.config import AlinaConfig
from alina.settings.service import PRIORITY_RANK, JobConfig

__all__ = [
    "Requeue",
    "TEAM_RUN",
    "SCHEDULED",
    "build_app",
    "ensure_schema",
    "occurrence_run_id",
    "run_now",
    "submit",
]

logger = logging.getLogger(__name__)

TEAM_RUN = "alina.team_run"
SCHEDULED = "alina.scheduled"
_SCHEMA_LOCK = 0x616C696E6171  # "alinaq": serialises schema creation between processes


class Requeue(Exception):
    """Put the job back in the queue (its run stopped for a shutdown, or runs elsewhere now)."""


class _Retry(BaseRetryStrategy):
    """Retry a job that was cut (shutdown, a run busy elsewhere, the store away), never one whose
    run ended on its own: a failed run is a recorded outcome, not a reason to run it again."""

    def __init__(self, max_attempts: int, retryable: tuple[type[BaseException], ...]) -> None:
        self.max_attempts = max_attempts
        self.retryable = retryable

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts + 1 >= self.max_attempts or not isinstance(exception, self.retryable):
            return None
        return RetryDecision(retry_in={"seconds": 1 if isinstance(exception, Requeue) else 2})


def _retryable() -> tuple[type[BaseException], ...]:
    from alina.memory_store.runs import RunBusyError, StoreUnavailableError

    return (
        Requeue,
        RunBusyError,
        StoreUnavailableError,
        asyncio.CancelledError,
        pexc.ConnectorException,
        psycopg.OperationalError,
    )


def occurrence_run_id(job: str, timestamp: int) -> str:
    """The run id of a team job's occurrence: the same on every attempt and every process."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"alina-job:{job}@{timestamp}").hex


def _job_options(name: str, job: JobConfig) -> dict[str, Any]:
    return {
        "lock": f"job:{name}",  # one occurrence running at a time
        "queueing_lock": f"job:{name}",  # and at most one waiting
        "priority": PRIORITY_RANK[job.priority],
        "task_kwargs": {"name": name},
    }


def build_app(config: AlinaConfig, *, schedule: bool = True) -> App:
    """The Procrastinate app of this deployment: its two tasks on ``serve.queue`` and, with
    ``schedule``, every enabled job of ``jobs:`` as a periodic task (the engine's scheduler)."""
    from alina.service import jobs as job_functions

    app = App(
        connector=PsycopgConnector(
            conninfo=config.postgres.dsn(), kwargs={"connect_timeout": 3}, min_size=1, max_size=4
        ),
        periodic_defaults={"max_delay": config.serve.catch_up_s},
    )
    retry = _Retry(config.serve.max_attempts, _retryable())
    queue = config.serve.queue
    app.task(name=TEAM_RUN, queue=queue, pass_context=True, retry=retry)(job_functions.team_run)
    scheduled = app.task(name=SCHEDULED, queue=queue, pass_context=True, retry=retry)(job_functions.scheduled)
    if schedule:
        for name, job in config.jobs.items():
            if job.enabled:
                opts = _job_options(name, job)
                app.periodic(cron=job.cron_expression(), periodic_id=name, **opts)(scheduled)
    return app


async def ensure_schema(app: App, dsn: str) -> bool:
    """Create Procrastinate's tables with its own schema tooling when they are missing, and apply
    our migrations; True when the queue schema was created. Idempotent and safe when several
    processes start at once (a session advisory lock serialises them)."""
    from alina.memory_store import migrate

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            await migrate(conn)
            cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            row = await cur.fetchone()
            if row and row[0]:
                return False
            await app.schema_manager.apply_schema_async()
            logger.info("created the job queue's tables (Procrastinate schema)")
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


async def submit(
    config: AlinaConfig,
    task: str,
    *,
    priority: str = "chat",
    mode: str = "normal",
    models: dict[str, str] | None = None,
    app: App | None = None,
) -> str:
    """Enqueue a team run of ``task`` and return its run id at once; any serve or worker process
    of this queue runs it (ValueError for an empty task, an unknown priority, mode or model)."""
    if not task.strip():
        raise ValueError("the task is empty: say what the team should do")
    if priority not in PRIORITY_RANK:
        raise ValueError(f"priority must be one of {', '.join(PRIORITY_RANK)} (got {priority!r})")
    if mode not in ("normal", "safe"):
        raise ValueError(f"mode must be normal or safe (got {mode!r})")
    for agent, model in (models or {}).items():
        if agent not in config.agents or model not in config.models:
            raise ValueError(f"model override {agent}={model}: unknown agent or model")
    run_id = uuid.uuid4().hex
    own = app is None
    if own:
        await _probe(config.postgres.dsn())
    app = app or build_app(config, schedule=False)
    async with app.open_async():
        if own:
            await ensure_schema(app, config.postgres.dsn())
        async with await psycopg.AsyncConnection.connect(config.postgres.dsn(), autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO job_occurrences (job_name, kind, run_id, task, priority, status) "
                "VALUES ('submit', 'team', %s, %s, %s, 'queued')",
                (run_id, _redact(task), priority),
            )
            job_id = await app.configure_task(
                TEAM_RUN, queue=config.serve.queue, priority=PRIORITY_RANK[priority]
            ).defer_async(run_id=run_id, task=task, mode=mode, models=dict(models or {}), job="submit")
            await conn.execute(
                "UPDATE job_occurrences SET queue_job_id = %s WHERE run_id = %s", (job_id, run_id)
            )
    return run_id


async def run_now(config: AlinaConfig, name: str, app: App | None = None) -> int:
    """Enqueue one occurrence of job ``name`` now (`alina jobs run NAME`); returns the queue's job
    id. KeyError for an unknown job; procrastinate AlreadyEnqueued when one is already waiting."""
    job = config.jobs[name]
    own = app is None
    if own:
        await _probe(config.postgres.dsn())
    app = app or build_app(config, schedule=False)
    async with app.open_async():
        if own:
            await ensure_schema(app, config.postgres.dsn())
        opts = _job_options(name, job)
        stamp = int(dt.datetime.now(dt.UTC).timestamp())
        return int(
            await app.configure_task(
                SCHEDULED,
                queue=config.serve.queue,
                lock=opts["lock"],
                queueing_lock=opts["queueing_lock"],
                priority=opts["priority"],
            ).defer_async(name=name, timestamp=stamp, manual=True)
        )


async def _probe(dsn: str) -> None:
    """Fail at once (psycopg.OperationalError) when Postgres is unreachable, instead of after the
    queue's connection pool gives up (30 s)."""
    conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=5)
    await conn.close()


def _redact(text: str) -> str:
    from alina._secrets import redact_text

    return redact_text(text)
