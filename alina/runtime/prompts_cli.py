"""``alina prompts list | show | diff | rollback``: the operator's view of and hand on the prompt
versions the agents run with (stored in Postgres, see :mod:`alina.memory_store.prompts`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(
    help="Prompt versions: list, show, diff and roll back what the agents run with.", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)
T = TypeVar("T")


def _call(config: Path | None, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``fn(versions)`` against the configured Postgres (migrated first). An unknown agent or
    version, or a refused transition, exits 2 with the reason; an unreachable server exits 1."""
    from alina.cli._common import _apply_migrations, _fail, _load, _run_async, _with_pg
    from alina.memory_store.prompts import PromptVersionError, PromptVersions

    cfg = _load(config)

    async def go() -> T:
        await _with_pg(cfg, _apply_migrations)
        return await fn(
            PromptVersions(cfg.postgres.dsn(), connect_timeout=int(cfg.postgres.connect_timeout_s))
        )

    try:
        return _run_async(go())
    except PromptVersionError as exc:
        _fail(typer.BadParameter(str(exc)))


def _as_json(v: Any) -> dict[str, Any]:
    return {
        "agent": v.agent,
        "version": v.version,
        "parent_version": v.parent_version,
        "source": v.source,
        "status": v.status,
        "in_use": v.in_use,
        "digest": v.digest,
        "protected_hash": v.protected_hash,
        "scores": v.scores,
        "p_value": v.p_value,
        "reason": v.reason,
        "created_at": str(v.created_at),
        "decided_at": str(v.decided_at) if v.decided_at else None,
        "system": v.system,
    }


@app.command("list")
def list_versions(
    agent: str | None = typer.Argument(None, help="one agent (default: all)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON array"),
    config: Path | None = ConfigOption,
) -> None:
    """Every stored version per agent; * marks the one in use."""

    async def go(versions: Any) -> list[Any]:
        from alina.config import ORCHESTRATOR, SPECIALISTS

        names = [agent] if agent else [ORCHESTRATOR, *SPECIALISTS]
        return [v for name in names for v in await versions.history(name)]

    rows = _call(config, go)
    if as_json:
        sys.stdout.write(
            json.dumps([{k: x for k, x in _as_json(v).items() if k != "system"} for v in rows]) + "\n"
        )
        return
    for v in rows:
        mark = "*" if v.in_use else " "
        extra = f" p={v.p_value:.3g}" if v.p_value is not None else ""
        out.print(
            f"{mark} {v.agent:<10} v{v.version:<4} {v.source:<9} {v.status:<11} {v.digest} "
            f"{str(v.created_at)[:19]}{extra}  {escape(v.reason or '')}"
        )


@app.command("show")
def show(
    agent: str = typer.Argument(..., help="alina | trader | monitor | optimizer"),
    version: int | None = typer.Argument(None, help="a version (default: the one in use)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
    config: Path | None = ConfigOption,
) -> None:
    """One version: its status, why, and its full system text."""
    v = _call(config, lambda versions: versions.get(agent, version))
    if as_json:
        sys.stdout.write(json.dumps(_as_json(v)) + "\n")
        return
    use = " (in use)" if v.in_use else ""
    out.print(
        f"{v.agent} v{v.version}{use}: {v.source}, {v.status}, digest {v.digest}, "
        f"parent v{v.parent_version}, protected {v.protected_hash}"
    )
    if v.reason:
        out.print(f"reason: {escape(v.reason)}")
    if v.scores or v.p_value is not None:
        out.print(f"scores: {json.dumps(v.scores)}  p-value: {v.p_value}")
    out.print(escape(v.system))


@app.command("diff")
def diff(
    agent: str = typer.Argument(...),
    a: int = typer.Argument(..., help="from version"),
    b: int = typer.Argument(..., help="to version"),
    config: Path | None = ConfigOption,
) -> None:
    """The unified diff of two versions' system texts (nothing when they are equal)."""
    text = _call(config, lambda versions: versions.diff(agent, a, b))
    sys.stdout.write(text)


@app.command("rollback")
def rollback(
    agent: str = typer.Argument(...),
    version: int = typer.Argument(..., help="a version that was in use before"),
    reason: str = typer.Option(..., "--reason", "-r", help="why (recorded with the rollback)"),
    config: Path | None = ConfigOption,
) -> None:
    """Put an earlier version back into use now (as a new version); agents take it on their next
    run, without a restart."""
    if not reason.strip():
        from alina.cli._common import _fail

        _fail(typer.BadParameter("--reason is empty: say why (it is recorded)"))
    v = _call(config, lambda versions: versions.rollback(agent, version, reason=reason))
    out.print(f"{v.agent} now runs v{v.version} (the text of v{version}): {escape(reason)}")
