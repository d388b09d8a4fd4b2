"""What the queue's two tasks do (registered in :mod:`alina.service.queue`).

Both run inside a serve or worker process, whose :class:`~alina.service.daemon.Service` they
find in the job context. Every occurrence and submitted run has a row in ``job_occurrences``
(what ran, when, where, how often it was attempted, how it ended).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import psycopg
from procrastinate import JobContext

from alina._errors import error_line
from alina.service.queue import Requeue, occurrence_run_id

if TYPE_CHECKING:
    from alina.service.daemon import Service

__all__ = ["scheduled", "team_run"]

logger = logging.getLogger(__name__)


def _service(context: JobContext) -> Service:
    service = (context.additional_context or {}).get("service")
    if service is None:
        raise RuntimeError("this job runs only in `alina serve` or `alina worker`")
    return service


async def team_run(
    context: JobContext,
    run_id: str,
    task: str,
    mode: str = "normal",
    models: dict[str, str] | None = None,
    job: str = "submit",
) -> str:
    """One submitted team run (resumed from its checkpoint when this is a retry)."""
    svc = _service(context)
    await svc.occurrences.start_run(run_id, context.job.id, svc.name)
    try:
        status = await svc.run_team(run_id, task, mode=mode, models=models or {})
    except BaseException as exc:
        await svc.occurrences.interrupted(run_id=run_id, detail=error_line(exc, 300))
        raise
    await svc.occurrences.finish(
        run_id=run_id, status="succeeded" if status == "completed" else "failed", detail=f"run {status}"
    )
    return status


async def scheduled(context: JobContext, timestamp: int, name: str, manual: bool = False) -> str:
    """One occurrence of job ``name`` scheduled for ``timestamp`` (UTC epoch seconds)."""
    svc = _service(context)
    job = svc.config.jobs.get(name)
    when = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    if job is None:  # a process with another config.yaml: run it where the job is known
        return f"job {name} unknown to this process"
    first, previous = await svc.occurrences.claim(
        name, job.kind, when, context.job.id, svc.name, priority=job.priority, task=job.task
    )
    if previous in ("succeeded", "failed", "skipped"):
        return f"occurrence {name}@{when:%Y-%m-%d %H:%M:%S} already {previous}"  # exactly once
    late = (dt.datetime.now(dt.UTC) - when).total_seconds()
    reason = None
    if not manual and await svc.occurrences.paused(name):
        reason = "paused"
    elif not manual and first and job.misfire == "skip" and late > svc.config.serve.misfire_grace_s:
        reason = f"misfire: started {late:.0f}s late (misfire: skip)"
    elif job.kind == "team" and svc.modes.current == "halt":
        reason = "the system is halted: no scheduled run starts"
    if reason is not None:
        await svc.occurrences.finish(job=name, when=when, status="skipped", detail=reason)
        return reason
    try:
        detail, ok = await _run_kind(svc, name, job.kind, timestamp, when)
    except (Requeue, asyncio.CancelledError, psycopg.OperationalError) as exc:
        await svc.occurrences.interrupted(job=name, when=when, detail=error_line(exc, 300))
        raise
    except Exception as exc:
        logger.exception("job %s failed", name)
        detail, ok = error_line(exc, 300), False
    await svc.occurrences.finish(job=name, when=when, status="succeeded" if ok else "failed", detail=detail)
    return detail


async def _run_kind(
    svc: Service, name: str, kind: str, timestamp: int, when: dt.datetime
) -> tuple[str, bool]:
    cfg = svc.config
    job = cfg.jobs[name]
    if kind == "team":
        run_id = occurrence_run_id(name, timestamp)
        await svc.occurrences.set_run(name, when, run_id)
        status = await svc.run_team(run_id, job.task or "", mode=job.mode, models=job.models)
        return f"run {run_id} {status}", status == "completed"
    if kind == "review":
        from alina.team.review import review_all  # the critic loop; imported when due

        report = await review_all(cfg)
        summary = (
            ", ".join(f"{r.agent} {r.status} v{r.version_before}->v{r.version_after}" for r in report.reviews)
            or "nothing to review"
        )
        if report.rollbacks:
            summary += f"; rolled back {', '.join(f'{r.agent} v{r.version}' for r in report.rollbacks)}"
        return f"review: {summary}", all(r.status == "done" for r in report.reviews)
    if kind == "reconcile":
        counts = await svc.reconcile_orders()
        return f"order intents: {counts}", True
    if kind == "retention":
        from alina.memory_store.retention import prune

        pruned = await prune(cfg)
        return f"retention: {'ok' if pruned.ok else 'not every store pruned'}", pruned.ok
    raise ValueError(f"unknown job kind {kind!r}")


class Occurrences:
    """``job_occurrences`` and ``job_state``: one short autocommit connection per call."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def _exec(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, connect_timeout=5
        ) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description else []

    async def claim(
        self,
        name: str,
        kind: str,
        when: dt.datetime,
        queue_job_id: int | None,
        worker: str,
        *,
        priority: str,
        task: str | None,
    ) -> tuple[bool, str | None]:
        """Mark the occurrence running (one row per job and time); returns (first attempt,
        the status it had before: a finished one is never run again)."""
        async with await psycopg.AsyncConnection.connect(self.dsn, connect_timeout=5) as conn:
            async with conn.transaction():
                cur = await conn.execute(
                    "SELECT status FROM job_occurrences WHERE job_name = %s AND scheduled_for = %s "
                    "FOR UPDATE",
                    (name, when),
                )
                row = await cur.fetchone()
                if row is not None and row[0] in ("succeeded", "failed", "skipped"):
                    return False, str(row[0])
                await conn.execute(
                    "INSERT INTO job_occurrences (job_name, kind, scheduled_for, queue_job_id, status, "
                    "attempts, worker, started_at, priority, task) "
                    "VALUES (%s, %s, %s, %s, 'running', 1, %s, now(), %s, %s) "
                    "ON CONFLICT (job_name, scheduled_for) WHERE scheduled_for IS NOT NULL DO UPDATE "
                    "SET status = 'running', attempts = job_occurrences.attempts + 1, "
                    "worker = EXCLUDED.worker, queue_job_id = EXCLUDED.queue_job_id, "
                    "started_at = coalesce(job_occurrences.started_at, now())",
                    (name, kind, when, queue_job_id, worker, priority, task),
                )
        return row is None, None if row is None else str(row[0])

    async def set_run(self, name: str, when: dt.datetime, run_id: str) -> None:
        await self._exec(
            "UPDATE job_occurrences SET run_id = %s WHERE job_name = %s AND scheduled_for = %s",
            (run_id, name, when),
        )

    async def start_run(self, run_id: str, queue_job_id: int | None, worker: str) -> None:
        await self._exec(
            "UPDATE job_occurrences SET status = 'running', attempts = attempts + 1, worker = %s, "
            "queue_job_id = %s, started_at = coalesce(started_at, now()) WHERE run_id = %s",
            (worker, queue_job_id, run_id),
        )

    def _where(
        self, run_id: str | None, job: str | None, when: dt.datetime | None
    ) -> tuple[str, tuple[Any, ...]]:
        if run_id is not None:
            return "run_id = %s", (run_id,)
        return "job_name = %s AND scheduled_for = %s", (job, when)

    async def finish(
        self,
        *,
        status: str,
        detail: str,
        run_id: str | None = None,
        job: str | None = None,
        when: dt.datetime | None = None,
    ) -> None:
        where, params = self._where(run_id, job, when)
        await self._exec(
            f"UPDATE job_occurrences SET status = %s, detail = %s, finished_at = now() WHERE {where}",
            (status, detail[:1000], *params),
        )

    async def interrupted(
        self,
        *,
        detail: str,
        run_id: str | None = None,
        job: str | None = None,
        when: dt.datetime | None = None,
    ) -> None:
        """Back to ``queued`` (the queue retries it), best effort: the store may be what failed."""
        where, params = self._where(run_id, job, when)
        try:
            await self._exec(
                f"UPDATE job_occurrences SET status = 'queued', detail = %s WHERE {where} "
                "AND status = 'running'",
                (f"interrupted: {detail}"[:1000], *params),
            )
        except Exception as exc:
            logger.warning("could not record the interruption: %s", exc)

    async def paused(self, name: str) -> bool:
        rows = await self._exec("SELECT paused FROM job_state WHERE name = %s", (name,))
        return bool(rows and rows[0][0])

    async def set_paused(self, name: str, paused: bool, by: str) -> None:
        await self._exec(
            "INSERT INTO job_state (name, paused, changed_by) VALUES (%s, %s, %s) ON CONFLICT (name) "
            "DO UPDATE SET paused = EXCLUDED.paused, changed_at = now(), changed_by = EXCLUDED.changed_by",
            (name, paused, by),
        )

    async def summary(self) -> dict[str, dict[str, Any]]:
        """Per job name: paused, and its latest occurrence (time, status, detail, run id)."""
        rows = await self._exec(
            "SELECT DISTINCT ON (job_name) job_name, scheduled_for, enqueued_at, started_at, finished_at, "
            "status, "
            "detail, run_id, attempts FROM job_occurrences ORDER BY job_name, enqueued_at DESC"
        )
        paused = dict(await self._exec("SELECT name, paused FROM job_state"))
        keys = (
            "scheduled_for",
            "enqueued_at",
            "started_at",
            "finished_at",
            "status",
            "detail",
            "run_id",
            "attempts",
        )
        out: dict[str, dict[str, Any]] = {n: {"paused": bool(p), "last": None} for n, p in paused.items()}
        for r in rows:
            out.setdefault(r[0], {"paused": bool(paused.get(r[0], False)), "last": None})
            out[r[0]]["last"] = dict(zip(keys, r[1:], strict=True))
        return out

    async def by_run(self, run_id: str) -> dict[str, Any] | None:
        rows = await self._exec(
            "SELECT job_name, status, priority, task, enqueued_at, started_at, attempts, detail, worker "
            "FROM job_occurrences WHERE run_id = %s",
            (run_id,),
        )
        if not rows:
            return None
        keys = (
            "job",
            "status",
            "priority",
            "task",
            "enqueued_at",
            "started_at",
            "attempts",
            "detail",
            "worker",
        )
        return dict(zip(keys, rows[0], strict=True))
