"""The always-on processes: `alina serve` and `alina worker`.

Both run a Procrastinate worker on the queue (``serve.concurrency`` jobs at once) in front of
one shared team session (run store, Redis, trading desk, memory, skills). Each job gets its own
:class:`~alina.team.TeamRunner`, so the agents of different runs call models in parallel while
the process-wide governors (Redis leases) keep the model-call cap across runs, processes and
machines. ``serve`` adds the schedule (``jobs:`` as periodic tasks, enqueued once per occurrence
whatever the number of serve processes), the monitor's observer, and /healthz, /metrics and
POST /alerts on ``serve.host:serve.port``.

When a process dies its jobs stay ``doing`` with a heartbeat that stops; every live process looks
for such jobs (Procrastinate's stalled-job query) and puts them back in the queue, where another
process picks them up and the run resumes from its last checkpoint under its per-run lock. On
SIGTERM a process takes no new job, lets each run finish the turn it is in (committed), requeues
it, and exits 0 within ``serve.grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Literal

import psycopg
from procrastinate import App
from procrastinate.worker import Worker

from alina.config import AlinaConfig
from alina.service.jobs import Occurrences
from alina.service.queue import TEAM_RUN, Requeue, build_app, ensure_schema

__all__ = ["Service", "run_process"]

logger = logging.getLogger(__name__)
Role = Literal["serve", "worker"]


class _Worker(Worker):
    """Procrastinate's worker, kept alive through a Postgres outage.

    The stock worker stops when one of its side tasks (heartbeat, listener, periodic deferrer)
    or a job fetch fails, and a job whose end cannot be written stays ``doing`` for ever. Here
    each of those retries until Postgres is back, so the runs in flight (whose turns queue in
    order meanwhile, see ``TeamRunner``) finish and are recorded.
    (Overrides private methods of procrastinate 3.x; the version is pinned in constraints.txt.)
    """

    def __init__(self, *args: Any, on_db: Callable[[bool], None], outage_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_db = on_db
        self._outage_s = outage_s

    async def _forever(self, what: str, make: Callable[[], Any]) -> None:
        while True:
            try:
                await make()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._on_db(False)
                logger.warning(
                    "queue %s failed (%s); retrying", what, str(exc).splitlines()[0] if str(exc) else exc
                )
                await asyncio.sleep(1.0)

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        tasks = [
            asyncio.create_task(self._forever("heartbeat", self._beat), name="update_heartbeats"),
            asyncio.create_task(self._forever("scheduler", self._periodic_deferrer), name="deferrer"),
            asyncio.create_task(
                self._forever("abort poll", self._poll_jobs_to_abort), name="poll_jobs_to_abort"
            ),
        ]
        if self.listen_notify:
            listen = lambda: self.app.job_manager.listen_for_jobs(  # noqa: E731
                on_notification=self._handle_notification, queues=self.queues
            )
            tasks.append(asyncio.create_task(self._forever("listener", listen), name="listener"))
        return tasks

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.update_heartbeat_interval)
            if self.worker_id is None:  # not registered yet (procrastinate sets it at start)
                continue
            await self.app.job_manager.update_heartbeat(self.worker_id)
            self._on_db(True)

    async def _fetch_and_process_jobs(self) -> None:
        try:
            await super()._fetch_and_process_jobs()
        except Exception as exc:
            self._on_db(False)
            logger.warning("queue fetch failed (%s); retrying", str(exc).splitlines()[0] if str(exc) else exc)
            await asyncio.sleep(1.0)

    async def _persist_job_status(self, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._outage_s
        while True:
            try:
                return await super()._persist_job_status(*args, **kwargs)
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise
                self._on_db(False)
                logger.warning("job status not saved yet (%s); retrying", exc)
                await asyncio.sleep(1.0)


class Service:
    """What the jobs of one process share: config, the team session, the occurrences table."""

    def __init__(self, config: AlinaConfig, app: App, template: Any, name: str) -> None:
        self.config = config
        self.app = app
        self.template = template  # the session's TeamRunner: its store, hot state, memory...
        self.name = name
        self.store = template.sink
        self.modes = template.modes
        self.occurrences = Occurrences(config.postgres.dsn())
        self.active: set[Any] = set()
        self.stopping = False
        self.runs_done = 0
        self._db_up_since: float | None = time.monotonic()

    # -- runs --------------------------------------------------------------------------------
    async def _runner(self, mode: str, models: dict[str, str]) -> tuple[Any, Any]:
        from alina.memory_store.optimizer import with_model_choices
        from alina.runtime.modes import SystemMode
        from alina.team import TeamRunner

        cfg = await with_model_choices(self.config)  # the optimizer's ladder choices, then the job's
        if models:
            agents = {
                a: c.model_copy(update={"model": models.get(a, c.model)}) for a, c in cfg.agents.items()
            }
            cfg = cfg.model_copy(update={"agents": agents})
        t = self.template
        # Its own mode object: a job's `mode: safe` (a local floor) must not reach other runs;
        # the shared mode (Redis) is read before every turn as everywhere else.
        modes = SystemMode.for_config(cfg)
        await modes.refresh()
        runner = TeamRunner(
            cfg,
            sink=t.sink,
            hot=t.hot,
            memory=t.team.memory,
            memory_writer=t.memory_writer,
            events=t.events,
            modes=modes,
            order_symbols=t.order_symbols,
            prompt_source=t.prompt_source,
            mode="safe" if mode == "safe" else "normal",
        )
        return runner, modes

    async def run_team(self, run_id: str, task: str, *, mode: str, models: dict[str, str]) -> str:
        """Run (or resume, after a crash or a shutdown) team run ``run_id``; its final status.
        Raises Requeue when the run must continue later (this process is stopping)."""
        from alina.skills.recorder import run_scope
        from alina.team import STOP_REQUESTED, AlreadyCompleted

        point = await self.store.resume_point(run_id)
        if point is not None and point.status == "completed":
            return "completed"  # an earlier attempt finished it (killed after its last write)
        if self.stopping:
            raise Requeue("this process is shutting down")
        runner, modes = await self._runner(mode, models)
        self.active.add(runner)
        try:
            with run_scope(run_id):
                try:
                    if point is None:
                        result = await runner.run(task, run_id=run_id)
                    else:
                        result = await runner.resume(run_id)
                except AlreadyCompleted:
                    return "completed"
                except psycopg.errors.UniqueViolation:
                    raise Requeue(f"run {run_id} was created by another attempt") from None
        finally:
            self.active.discard(runner)
            await runner.close()
            await modes.close()
        if result.status == "stopped" and result.stop_reason.startswith(STOP_REQUESTED):
            raise Requeue(f"run {run_id} stopped after turn {result.turns}: {result.stop_reason}")
        self.runs_done += 1
        return str(result.status)

    async def reconcile_orders(self) -> dict[str, int]:
        from alina.skills.trading import bound_desk

        desk = await bound_desk()  # the desk of the session's application (bound around the worker)
        return await desk.start()

    # -- stop --------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Take no new job; every run in flight ends after its current turn (then requeued)."""
        self.stopping = True
        for runner in list(self.active):
            runner.request_stop("shutdown")

    # -- recovery ----------------------------------------------------------------------------
    def db_state(self, ok: bool) -> None:
        if not ok:
            self._db_up_since = None
        elif self._db_up_since is None:
            self._db_up_since = time.monotonic()

    async def recover_stalled(self) -> int:
        """Put back in the queue the jobs of processes that stopped sending heartbeats.

        Only once this process has itself been connected for ``stalled_after_s``: after a
        Postgres restart every live process needs a heartbeat interval to show it is alive."""
        s = self.config.serve
        if self._db_up_since is None or time.monotonic() - self._db_up_since < s.stalled_after_s:
            return 0
        retried = 0
        for job in await self.app.job_manager.get_stalled_jobs(
            queue=s.queue, seconds_since_heartbeat=s.stalled_after_s
        ):
            try:
                await self.app.job_manager.retry_job(job)
                retried += 1
                logger.warning("job %s (%s) of a dead process is back in the queue", job.id, job.task_name)
            except Exception as exc:
                logger.debug("job %s not retried: %s", job.id, exc)
        return retried

    async def resume_orphans(self) -> int:
        """Enqueue the interrupted runs that no job will continue (e.g. a killed `alina run`):
        `running`, no process holding their lock, no row in job_occurrences."""
        from alina.memory_store.runs import _INTERRUPTED

        async with await psycopg.AsyncConnection.connect(self.config.postgres.dsn(), autocommit=True) as conn:
            cur = await conn.execute(
                f"SELECT r.id, r.task FROM runs r WHERE {_INTERRUPTED} AND NOT EXISTS "
                "(SELECT 1 FROM job_occurrences o WHERE o.run_id = r.id)"
            )
            orphans = await cur.fetchall()
            count = 0
            for run_id, task in orphans:
                cur = await conn.execute(
                    "INSERT INTO job_occurrences (job_name, kind, run_id, task, priority, status) "
                    "VALUES ('resume', 'team', %s, %s, 'chat', 'queued') ON CONFLICT DO NOTHING RETURNING id",
                    (run_id, task),
                )
                if await cur.fetchone() is None:
                    continue  # another serve took it
                job_id = await self.app.configure_task(TEAM_RUN, queue=self.config.serve.queue).defer_async(
                    run_id=run_id, task=task, mode="normal", models={}, job="resume"
                )
                await conn.execute(
                    "UPDATE job_occurrences SET queue_job_id = %s WHERE run_id = %s", (job_id, run_id)
                )
                logger.info("interrupted run %s will be resumed (job %s)", run_id, job_id)
                count += 1
        return count


async def _every(seconds: float, fn: Callable[[], Any], what: str) -> None:
    while True:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("%s failed: %s", what, exc)
        await asyncio.sleep(seconds)


async def _wait_for_db(dsn: str, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=3)
            await conn.close()
            return
        except psycopg.OperationalError as exc:
            logger.warning("waiting for Postgres: %s", str(exc).splitlines()[0] if str(exc) else exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


async def run_process(
    config: AlinaConfig,
    role: Role,
    *,
    port: int | None = None,
    name: str | None = None,
    announce: Callable[[str], None] = print,
) -> int:
    """Run `alina serve` (``role="serve"``) or `alina worker` until SIGTERM/SIGINT; returns the
    exit code (0 after a clean shutdown)."""
    from alina.cli._team import _team_session  # the same session `alina run` and `alina chat` use

    s = config.serve
    name = name or f"{socket.gethostname()}:{os.getpid()}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    service: Service | None = None
    worker: _Worker | None = None

    def on_signal() -> None:
        if stop.is_set():
            return
        stop.set()
        announce(f"{role} {name}: stopping (finishing current turns, at most {s.grace_s:g}s)")
        if service is not None:
            service.request_stop()
        if worker is not None:
            worker.stop()
        # The promise is an exit within grace_s: whatever still runs then is cut (its job stays
        # `doing` and is retried elsewhere; its run resumes from its last checkpoint).
        loop.call_later(s.grace_s - 0.5, _hard_exit)

    def _hard_exit() -> None:
        logger.warning("grace period over: exiting with runs still in flight (they resume elsewhere)")
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)

    app = build_app(config, schedule=role == "serve")
    await _wait_for_db(config.postgres.dsn(), stop)
    if stop.is_set():
        return 0
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.open_async())
        await ensure_schema(app, config.postgres.dsn())
        template = await stack.enter_async_context(_team_session(config, live=False, on_event=None))
        service = Service(config, app, template, name)
        side = [asyncio.create_task(_every(s.heartbeat_s, service.recover_stalled, "stalled-job recovery"))]
        if role == "serve":
            await _serve_extras(config, stack, template, port, announce)
            side.append(
                asyncio.create_task(
                    _every(max(s.stalled_after_s, 30.0), service.resume_orphans, "resume of interrupted runs")
                )
            )
        for t in side:
            stack.callback(t.cancel)
        worker = _Worker(
            app,
            queues=[s.queue],
            name=name,
            concurrency=s.concurrency,
            install_signal_handlers=False,
            shutdown_graceful_timeout=max(0.5, s.grace_s - 3.0),
            update_heartbeat_interval=s.heartbeat_s,
            stalled_worker_timeout=s.stalled_after_s,
            fetch_job_polling_interval=s.poll_s,
            additional_context={"service": service},
            delete_jobs="successful",
            on_db=service.db_state,
            outage_s=config.resilience.store_outage_s,
        )
        announce(f"{role} {name} ready: queue {s.queue}, concurrency {s.concurrency}")
        while not stop.is_set():
            try:
                await worker.run()
            except Exception as exc:
                logger.warning("worker stopped (%s); restarting when Postgres answers", exc)
                service.db_state(False)
                await _wait_for_db(config.postgres.dsn(), stop)
        announce(f"{role} {name}: stopped ({service.runs_done} runs finished here)")
    return 0


async def _serve_extras(
    config: AlinaConfig,
    stack: contextlib.AsyncExitStack,
    runner: Any,
    port: int | None,
    announce: Callable[[str], None],
) -> None:
    """Health watching, then the same observability as ``alina chat``: the observer (alert
    rules -> actions, the paper account's figures refreshed before each evaluation) and the
    metrics server (``/metrics``, ``/healthz``, ``POST /alerts``) on ``serve.host``."""
    from alina.cli._common import _healthy
    from alina.monitoring.live import observability, paper_refresh
    from alina.runtime.modes import watch_health
    from alina.skills.bindings import current_bindings

    watcher = asyncio.create_task(watch_health(runner.modes, lambda: _healthy(config)))
    stack.callback(watcher.cancel)
    bound = current_bindings()  # the session's application: its desk
    obs = await stack.enter_async_context(
        observability(
            config,
            modes=runner.modes,
            port=port if port is not None else (config.serve.port or config.monitoring.port),
            host=config.serve.host,
            refresh=paper_refresh(bound.desk if bound is not None else None),
        )
    )
    if obs.server is not None:  # (a port is always given here)
        announce(f"metrics: {obs.server.url}/metrics")
