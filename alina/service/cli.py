"""`alina serve`, `alina worker`, `alina submit` and `alina jobs list|run|pause|resume`."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from alina.settings.service import QueuePriority, RunMode

jobs_app = typer.Typer(
    help="Scheduled jobs (jobs: in config.yaml): list, run now, pause, resume.", no_args_is_help=True
)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


def _cli() -> Any:
    import alina.cli._common as cli

    return cli


def _logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("procrastinate", "httpx", "autogen_core", "autogen_agentchat", "chromadb"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _process(
    role: str, config: Path | None, port: int | None, concurrency: int | None, name: str | None = None
) -> None:
    # A SIGTERM while the process still starts (imports, config, before run_process installs its
    # own handler) is a clean stop too: nothing has been taken from the queue yet.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cli = _cli()
    overrides = {"serve.concurrency": concurrency} if concurrency else None
    cfg = cli._guarded(lambda: cli.load_config(config, overrides=overrides))
    cli._load(config)  # cost rates, as every command that calls models
    from alina.service.daemon import run_process

    _logging()

    def announce(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    code = cli._run_async(run_process(cfg, role, port=port, name=name, announce=announce))  # type: ignore[arg-type]
    raise typer.Exit(code)


def serve(
    port: int | None = typer.Option(
        None, "--port", help="/healthz, /metrics, POST /alerts on serve.host:PORT"
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=64, help="override serve.concurrency"
    ),
    name: str | None = typer.Option(
        None, "--name", help="this process's name in the queue (default HOST:PID)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Always on: run the jobs of config.yaml on schedule (each occurrence once, however many
    serve processes), work the queue, watch alerts, serve metrics; SIGTERM stops cleanly."""
    _process("serve", config, port, concurrency, name)


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=64, help="override serve.concurrency"
    ),
    name: str | None = typer.Option(
        None, "--name", help="this worker's name in the queue (default HOST:PID)"
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Work the queue (submitted runs, due jobs) beside `alina serve`, on this or another machine
    (point its config.yaml at the shared Postgres and Redis, and at its own model server)."""
    _process("worker", config, None, concurrency, name)


def submit(
    task: str = typer.Argument(..., help="the task for ALINA's team"),
    priority: QueuePriority = typer.Option("chat", "--priority", help="its place in the queue"),
    mode: RunMode = typer.Option("normal", "--mode", help="safe: read and report only"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Enqueue a team run for the serve/worker processes; print its run id at once."""
    from alina.service.queue import submit as enqueue

    cli = _cli()
    if not task.strip():
        cli._fail(typer.BadParameter("TASK is empty: say what the team should do"))
    cfg = cli._load(config)
    run_id = cli._run_async(_with_store(cfg, enqueue(cfg, task, priority=priority, mode=mode)))
    if as_json:
        sys.stdout.write(json.dumps({"run_id": run_id, "status": "queued", "priority": priority}) + "\n")
    else:
        cli.out.print(run_id)
        cli.err.print(f"[dim]queued; follow it with `alina runs show {run_id}`[/]")


async def _with_store(cfg: Any, coro: Any) -> Any:
    """``coro`` with an unreachable Postgres reported as the store's error (exit 1)."""
    import psycopg

    from alina.memory_store.runs import unavailable_error

    try:
        return await coro
    except psycopg.OperationalError as exc:
        raise unavailable_error(cfg.postgres.dsn(), exc) from None
    except Exception as exc:
        from procrastinate import exceptions as pexc

        if isinstance(exc, pexc.ConnectorException):
            raise unavailable_error(cfg.postgres.dsn(), exc) from None
        raise


def _job_name(cfg: Any, name: str) -> None:
    if name not in cfg.jobs:
        _cli()._fail(
            typer.BadParameter(f"no job {name!r} under jobs: (jobs: {', '.join(sorted(cfg.jobs)) or 'none'})")
        )


def _next(expr: str) -> str:
    from croniter import croniter

    nxt = croniter(expr, dt.datetime.now(dt.UTC)).get_next(dt.datetime)
    return f"{nxt:%Y-%m-%d %H:%M:%S}"


@jobs_app.command("list")
def jobs_list(as_json: bool = typer.Option(False, "--json"), config: Path | None = ConfigOption) -> None:
    """Every job of config.yaml: schedule, next time (UTC), paused, and its latest occurrence."""
    from alina.service.jobs import Occurrences

    cli = _cli()
    cfg = cli._load(config)

    async def go() -> dict[str, Any]:
        await cli._with_pg(cfg, cli._apply_migrations)
        return await Occurrences(cfg.postgres.dsn()).summary()

    state = cli._run_async(go())
    rows = []
    for name, job in cfg.jobs.items():
        info = state.get(name, {"paused": False, "last": None})
        rows.append(
            {
                "name": name,
                "kind": job.kind,
                "schedule": job.cron_expression(),
                "enabled": job.enabled,
                "priority": job.priority,
                "misfire": job.misfire,
                "paused": info["paused"],
                "next": _next(job.cron_expression()) if job.enabled else None,
                "last": info["last"],
            }
        )
    if as_json:
        sys.stdout.write(json.dumps(rows, default=str) + "\n")
        return
    table = Table(title="jobs (times in UTC)")
    for col in ("name", "kind", "schedule", "next", "state", "last occurrence"):
        table.add_column(col)
    for r in rows:
        last = r["last"]
        when = str(last["scheduled_for"] or last["enqueued_at"])[:19] if last else ""
        text = f"{when} {last['status']} {escape(str(last['detail'] or ''))[:60]}" if last else "-"
        state_text = "paused" if r["paused"] else ("enabled" if r["enabled"] else "disabled")
        table.add_row(r["name"], r["kind"], r["schedule"], r["next"] or "-", state_text, text)
    cli.out.print(table)


@jobs_app.command("run")
def jobs_run(name: str, config: Path | None = ConfigOption) -> None:
    """Enqueue one occurrence of NAME now (a running serve or worker runs it); exit 1 when one
    is already waiting."""
    from procrastinate import exceptions as pexc

    from alina.service.queue import run_now

    cli = _cli()
    cfg = cli._load(config)
    _job_name(cfg, name)
    try:
        job_id = cli._run_async(_with_store(cfg, run_now(cfg, name)))
    except pexc.AlreadyEnqueued:
        cli._fail(cli.CommandFailed(f"job {name} already has an occurrence waiting in the queue"))
    cli.out.print(f"job {name} enqueued (queue job {job_id}); `alina jobs list` shows how it ends")


def _pause(name: str, paused: bool, config: Path | None) -> None:
    import getpass

    from alina.service.jobs import Occurrences

    cli = _cli()
    cfg = cli._load(config)
    _job_name(cfg, name)

    async def go() -> None:
        await cli._with_pg(cfg, cli._apply_migrations)
        await Occurrences(cfg.postgres.dsn()).set_paused(name, paused, getpass.getuser())

    cli._run_async(go())
    cli.out.print(f"job {name} {'paused: its occurrences are skipped' if paused else 'resumed'}")


@jobs_app.command("pause")
def jobs_pause(name: str, config: Path | None = ConfigOption) -> None:
    """Skip NAME's scheduled occurrences (recorded as skipped) until `alina jobs resume NAME`."""
    _pause(name, True, config)


@jobs_app.command("resume")
def jobs_resume(name: str, config: Path | None = ConfigOption) -> None:
    """Run NAME's occurrences again."""
    _pause(name, False, config)


def queued_run(cfg: Any, run_id: str) -> dict[str, Any] | None:
    """A submitted run that no process has started yet (for `alina runs show`), or None."""
    from alina.service.jobs import Occurrences

    return _cli()._run_async(Occurrences(cfg.postgres.dsn()).by_run(run_id))


def register(app: typer.Typer) -> None:
    """Mount the commands on the `alina` app."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("submit")(submit)
    app.add_typer(jobs_app, name="jobs")
