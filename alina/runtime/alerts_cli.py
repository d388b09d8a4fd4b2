"""``alina alerts list | approve ID | reject ID | rules``: the operator's side of the observer.

Actions configured with ``approve: true`` wait in ``alert_actions`` as ``pending``; ``approve``
marks one approved (the observer that proposed it applies it on its next evaluation), ``reject``
drops it. ``rules`` prints the Prometheus rule file generated from ``alerts:``
(deploy/alerts.yml).
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    help="Alerts and the actions waiting for an operator (approve: true).", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


def _go(config: Path | None, fn: Any) -> Any:
    """``fn(connection)`` on the configured Postgres, migrations applied first."""
    from alina.cli._common import _apply_migrations, _load, _run_async, _with_pg

    cfg = _load(config)

    async def both(conn: Any) -> Any:
        await _apply_migrations(conn)
        return await fn(conn)

    return _run_async(_with_pg(cfg, both))


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if k.endswith("_at") else v for k, v in row.items()}


@app.command("list")
def list_cmd(
    limit: int = typer.Option(20, min=1, max=1000, help="at most this many actions and alerts"),
    waiting: bool = typer.Option(False, "--waiting", help="only actions waiting for an operator"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    config: Path | None = ConfigOption,
) -> None:
    """Actions waiting for an operator first, then the latest ones; and the open alerts."""
    from alina.monitoring.action_store import list_actions

    async def go(conn: Any) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        actions = await list_actions(conn, limit=limit, waiting_only=waiting)
        cur = await conn.execute(
            "SELECT id, kind, severity, message, source, created_at FROM alerts WHERE resolved_at IS NULL "
            "ORDER BY id DESC LIMIT %s",
            (limit,),
        )
        return actions, list(await cur.fetchall())

    actions, alerts = _go(config, go)
    if as_json:
        open_alerts = [
            {"id": a[0], "kind": a[1], "severity": a[2], "message": a[3], "source": a[4], "at": _iso(a[5])}
            for a in alerts
        ]
        sys.stdout.write(
            json.dumps({"actions": [_jsonable(a) for a in actions], "open_alerts": open_alerts}) + "\n"
        )
        return
    table = Table(title="alert actions (waiting first, then newest)")
    for col in ("id", "status", "action", "rule", "at", "reason / detail"):
        table.add_column(col)
    for a in actions:
        colour = {"pending": "yellow", "approved": "yellow", "applied": "red"}.get(a["status"], "dim")
        why = a["reason"] + (f" - {a['detail']}" if a["detail"] else "")
        table.add_row(
            str(a["id"]),
            f"[{colour}]{a['status']}[/]",
            a["action"],
            escape(a["rule"]),
            str(_iso(a["created_at"]))[:19],
            escape(why[:120]),
        )
    out.print(table)
    for a in alerts:
        out.print(f"[red]open alert[/] {a[0]} {str(_iso(a[5]))[:19]} {a[2]} {escape(a[1])}: {escape(a[3])}")
    if not alerts:
        out.print("no open alerts")
    if any(a["status"] == "pending" for a in actions):
        out.print("[dim]decide with `alina alerts approve ID` or `alina alerts reject ID`[/]")


def _decide(action_id: int, approve: bool, config: Path | None) -> None:
    from alina.cli._common import CommandFailed, _fail
    from alina.monitoring.action_store import ActionDecisionError, decide

    who = f"operator:{getpass.getuser()}"
    try:
        row = _go(config, lambda conn: decide(conn, action_id, approve, who))
    except ActionDecisionError as exc:
        _fail(CommandFailed(str(exc)))
    verb = "approved: the observer applies it on its next evaluation" if approve else "rejected"
    out.print(f"action {row['id']} ({row['action']} for alert {escape(row['rule'])}) {verb}")


@app.command("approve")
def approve(
    action_id: int = typer.Argument(..., min=1, help="the action's id (`alina alerts list`)"),
    config: Path | None = ConfigOption,
) -> None:
    """Approve a pending action; the observer that proposed it takes it on its next evaluation."""
    _decide(action_id, True, config)


@app.command("reject")
def reject(
    action_id: int = typer.Argument(..., min=1, help="the action's id (`alina alerts list`)"),
    config: Path | None = ConfigOption,
) -> None:
    """Reject a pending action: it is never taken (the alert itself stays open)."""
    _decide(action_id, False, config)


@app.command("rules")
def rules(config: Path | None = ConfigOption) -> None:
    """Print the Prometheus rule file for the configured alert rules (deploy/alerts.yml)."""
    from alina.cli._common import _load
    from alina.monitoring.rules import render_rules

    sys.stdout.write(render_rules(_load(config).alerts))
