"""``alina mode show | set | resume``: the operator's view of and hand on the system mode."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    help="The system mode: normal, degraded, safe (read only), halt (kill switch).", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


class SettableMode(StrEnum):
    """What an operator may set by hand (normal comes back through `resume`)."""

    degraded = "degraded"
    safe = "safe"
    halt = "halt"


def _open(config: Path | None) -> tuple[Any, Any]:
    from alina.cli._common import _load
    from alina.runtime.modes import SystemMode

    cfg = _load(config)
    return cfg, SystemMode.for_config(cfg)


async def _migrated(cfg: Any) -> None:
    """The mode tables exist (a fresh database gets its migrations, as every command does)."""
    from alina.cli._common import _apply_migrations, _with_pg

    await _with_pg(cfg, _apply_migrations)


def _run(coro: Any) -> Any:
    from alina.cli._common import _run_async

    return _run_async(coro)


@app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    limit: int = typer.Option(10, min=1, max=1000, help="how many transitions to list"),
    config: Path | None = ConfigOption,
) -> None:
    """The current mode, who set it and why, the latest transitions and the open alerts."""
    cfg, modes = _open(config)

    async def go() -> tuple[Any, list[Any], list[dict[str, Any]]]:
        try:
            await _migrated(cfg)
            state = await modes.refresh()
            return state, await modes.history(limit), await modes.open_alerts(limit)
        finally:
            await modes.close()

    state, history, alerts = _run(go())
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "mode": state.mode,
                    "reason": state.reason,
                    "actor": state.actor,
                    "automatic": state.automatic,
                    "since": state.since,
                    "history": [
                        {
                            "from": t.from_mode,
                            "to": t.to_mode,
                            "actor": t.actor,
                            "reason": t.reason,
                            "automatic": t.automatic,
                            "run_id": t.run_id,
                            "at": str(t.created_at),
                        }
                        for t in history
                    ],
                    "open_alerts": [{**a, "at": str(a["at"])} for a in alerts],
                }
            )
            + "\n"
        )
        return
    colour = {"normal": "green", "degraded": "yellow"}.get(state.mode, "red")
    out.print(f"mode: [bold {colour}]{state.mode}[/] (by {escape(state.actor)}: {escape(state.reason)})")
    for t in history:
        how = "auto" if t.automatic else "manual"
        out.print(
            f"  {str(t.created_at)[:19]}  {t.from_mode} -> {t.to_mode}  {how} by "
            f"{escape(t.actor)}: {escape(t.reason)}"
        )
    for a in alerts:
        when = str(a["at"])[:19]
        out.print(f"  [red]open alert[/] {when} {a['severity']} {a['kind']}: {escape(a['message'])}")


@app.command("set")
def set_mode(
    mode: SettableMode = typer.Argument(..., help="degraded | safe | halt"),
    reason: str = typer.Option(..., "--reason", "-r", help="why (recorded with the transition)"),
    config: Path | None = ConfigOption,
) -> None:
    """Set the mode for every process. halt also cancels every open order at once."""
    if not reason.strip():
        from alina.cli._common import _fail

        _fail(typer.BadParameter("--reason is empty: say why (it is recorded)"))
    cfg, modes = _open(config)

    async def go() -> tuple[Any, int]:
        try:
            await _migrated(cfg)
            state = await modes.set(mode.value, reason, actor="operator")
            canceled = await _cancel_open_orders(cfg, reason) if mode is SettableMode.halt else 0
            return state, canceled
        finally:
            await modes.close()

    state, canceled = _run(go())
    out.print(f"mode: [bold]{state.mode}[/] ({escape(reason)})")
    if mode is SettableMode.halt:
        out.print(f"canceled {canceled} open order(s); no scheduled run starts until `alina mode resume`")


@app.command("resume")
def resume(
    reason: str = typer.Option("operator resumed", "--reason", "-r", help="why (recorded)"),
    force: bool = typer.Option(False, "--force", help="resume even if a health check fails"),
    config: Path | None = ConfigOption,
) -> None:
    """Back to normal. The health checks (Postgres, Redis, the model) must pass unless --force."""
    from alina.cli._common import CommandFailed, _fail

    cfg, modes = _open(config)
    failing = [] if force else _failing_checks(cfg)
    if failing:
        _fail(
            CommandFailed(
                "health checks fail, the mode is unchanged: "
                + "; ".join(failing)
                + " (fix them, or `alina mode resume --force`)"
            )
        )

    async def go() -> Any:
        try:
            await _migrated(cfg)
            return await modes.set("normal", reason, actor="operator")
        finally:
            await modes.close()

    state = _run(go())
    out.print(f"mode: [bold green]{state.mode}[/] ({escape(reason)})")


def _failing_checks(cfg: Any) -> list[str]:
    """The doctor's checks that fail, as 'name: detail' (disk is not a reason to stay read-only)."""
    from alina.cli._common import _doctor_checks

    return [f"{c.name}: {c.detail}" for c in _doctor_checks(cfg) if not c.ok and c.name != "disk"]


async def _cancel_open_orders(cfg: Any, reason: str) -> int:
    """The kill switch's cancel: every resting order of the configured desk, whatever the mode."""
    from alina.trading.desk import open_desk
    from alina.trading.intents import PgIntentStore

    async with PgIntentStore(cfg.postgres.dsn()) as intents:
        desk = await open_desk(cfg.trading, intents=intents, mode_source=lambda: "halt")
        try:
            return len(await desk.cancel_all(f"halt: {reason}"))
        finally:
            await desk.close()
