"""``alina config check``, ``up``, ``down``, ``doctor`` and ``alina db``: the configuration and
the local services."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from alina.cli._app import app, config_app, db_app
from alina.cli._common import (
    EXIT_FAILURE,
    EXIT_OK,
    ConfigOption,
    _apply_migrations,
    _doctor_checks,
    _guarded,
    _load,
    _print_json,
    _run_async,
    _services,
    _with_pg,
    out,
)
from alina.progress import step

# --------------------------------------------------------------------------- config


@config_app.command("check")
def config_check(
    path: Path = typer.Argument(None, help="file to check (default: the active config)"),
) -> None:
    """Validate a config file; print every problem as `path.to.field: what is wrong (got X)`."""
    cfg = _load(path)
    agents = ", ".join(f"{a}->{c.model}" for a, c in cfg.agents.items())
    out.print(f"[green]ok[/] {escape(str(path or 'config'))}: models {sorted(cfg.models)}; agents {agents}")


# --------------------------------------------------------------------------- services


@app.command()
def up(config: Path | None = ConfigOption) -> None:
    """Start local Postgres and Redis on loopback (data in the project's .alina/ folder)."""
    cfg = _load(config)
    pg, redis = _services(cfg)
    with step("starting Postgres ..."):
        status = _guarded(pg.start)
    out.print(f"postgres  {status:<16} {cfg.postgres.dsn_for_display()}")
    with step("starting Redis ..."):
        status = _guarded(redis.start)
    out.print(f"redis     {status:<16} {cfg.redis.url()}")
    applied = _run_async(_with_pg(cfg, _apply_migrations))
    out.print(f"schema    {'applied ' + ', '.join(applied) if applied else 'up to date'}")


@db_app.command("migrate")
def db_migrate(config: Path | None = ConfigOption) -> None:
    """Apply the pending schema migrations (forward only; `alina up` and every run do it too)."""
    cfg = _load(config)
    with step("applying migrations ..."):
        applied = _run_async(_with_pg(cfg, _apply_migrations))
    if applied:
        for name in applied:
            out.print(f"applied   {name}")
    else:
        out.print("schema up to date: nothing to apply")


@db_app.command("status")
def db_status(config: Path | None = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Every migration: applied (when) or pending; changes nothing. Exit 1 if any is pending."""
    from alina.memory_store.migrate import migration_status

    cfg = _load(config)
    rows = _run_async(_with_pg(cfg, migration_status))
    pending = [r for r in rows if r.applied_at is None]
    if as_json:
        _print_json([dataclasses.asdict(r) for r in rows])
    else:
        for r in rows:
            state = f"applied {r.applied_at[:19]}" if r.applied_at else "PENDING"
            note = "" if r.known else "  (applied by a newer alina; this code does not ship it)"
            out.print(f"{r.version:04d}  {r.name:<28} {state}{note}")
        if pending:
            out.print(f"{len(pending)} pending: run `alina db migrate`")
    if pending:
        raise typer.Exit(EXIT_FAILURE)


@app.command()
def down(config: Path | None = ConfigOption) -> None:
    """Stop the local Postgres and Redis started by `alina up`."""
    cfg = _load(config)
    pg, redis = _services(cfg)
    out.print(f"redis     {_guarded(redis.stop)}")
    out.print(f"postgres  {_guarded(pg.stop)}")


@app.command()
def doctor(config: Path | None = ConfigOption, as_json: bool = typer.Option(False, "--json")) -> None:
    """Check model, Postgres, Redis and disk; print a fix for each failure."""
    cfg = _load(config)
    checks = _doctor_checks(cfg)
    if as_json:
        out.print_json(data=[c.__dict__ for c in checks])
    else:
        table = Table(title="alina doctor")
        for col in ("check", "status", "detail", "fix"):
            table.add_column(col)
        for c in checks:
            table.add_row(
                c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", escape(c.detail), escape(c.fix or "")
            )
        out.print(table)
    raise typer.Exit(EXIT_OK if all(c.ok for c in checks) else EXIT_FAILURE)
