"""``alina memory``: search, teach, forget, inspect and prune the team's memory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from alina.cli._app import memory_app
from alina.cli._common import (
    EXIT_FAILURE,
    EXIT_OK,
    CommandFailed,
    ConfigOption,
    _fail,
    _jsonable,
    _load,
    _print_json,
    _run_async,
    _with_app,
    err,
    out,
)
from alina.config import AlinaConfig
from alina.progress import step
from alina.settings.memory import Kind


@memory_app.command("graph")
def memory_graph(
    entity: str = typer.Argument(..., help="KIND:NAME (e.g. asset:BTC/USDT) or a bare name"),
    limit: int = typer.Option(50, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """The neighbourhood of an entity in the memory graph, with provenance."""
    from alina.api import EntityNotFound

    cfg = _load(config)
    try:
        edges = _run_async(_with_app(cfg, lambda app: app.memory.graph(entity, limit=limit)))
    except EntityNotFound as exc:
        _fail(CommandFailed(str(exc)))
    if as_json:
        _print_json(_jsonable([e.__dict__ for e in edges]))
        return
    for e in edges:
        out.print(escape(str(e)))


@memory_app.command("search")
def memory_search(
    query: str,
    agent: str | None = typer.Option(None, help="search this agent's memories plus the shared ones"),
    top_k: int = typer.Option(5, min=1, max=100),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Ranked memories for a query, with scores and provenance."""
    cfg = _load(config)
    if not query.strip():
        _fail(typer.BadParameter("the search query is empty"))
    if agent is not None:
        _known_agent(cfg, agent, "--agent")

    with step("loading the embedding model and searching ...", quiet=as_json):
        report = _run_async(_with_app(cfg, lambda app: app.memory.search(query, agent=agent, top_k=top_k)))
    if as_json:
        _print_json(_jsonable(report.to_dict()))
        return
    for i, h in enumerate(report.hits, 1):
        where = f"run {h.run_id[:8]}#{h.message_seq}" if h.run_id else "-"
        text = escape(h.text[:100])
        out.print(f"{i:>2} {h.score:.2f} {h.kind:<8} {h.scope:<9} {where:<14} {text}  [dim]{h.id}[/]")


def _known_agent(cfg: AlinaConfig, name: str, option: str) -> None:
    if name not in cfg.agents:
        _fail(typer.BadParameter(f"{option}: no agent {name!r} (agents: {', '.join(sorted(cfg.agents))})"))


@memory_app.command("add")
def memory_add(
    text: str = typer.Argument(..., help="what the team should remember (one short fact or lesson)"),
    kind: Kind = typer.Option("note", help="what kind of memory it is"),
    scope: str = typer.Option("shared", help="`shared` (every agent) or one agent's name"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Teach the team: store a note or lesson that agents retrieve before their model calls."""
    from alina.memory_store.vector import SHARED

    cfg = _load(config)
    if not text.strip():
        _fail(typer.BadParameter("the text is empty"))
    if scope != SHARED:
        _known_agent(cfg, scope, "--scope")

    with step("embedding and storing ...", quiet=as_json):
        memory_id = _run_async(_with_app(cfg, lambda app: app.memory.add(text, kind=kind, scope=scope)))
    if as_json:
        _print_json({"id": memory_id, "kind": kind, "scope": scope})
    else:
        out.print(f"remembered {memory_id} ({kind}, scope {scope}); `alina memory forget ID` removes it")


@memory_app.command("forget")
def memory_forget(
    ids: list[str] = typer.Argument(..., help="memory ids (shown by `memory search` and `memory add`)"),
    config: Path | None = ConfigOption,
) -> None:
    """Delete memories by id from every scope. Exit 1 if none of them existed."""

    cfg = _load(config)

    deleted = _run_async(_with_app(cfg, lambda app: app.memory.forget(ids)))
    out.print(f"forgot {deleted} of {len(ids)} memor{'y' if len(ids) == 1 else 'ies'}")
    if deleted == 0:
        raise typer.Exit(EXIT_FAILURE)


@memory_app.command("stats")
def memory_stats_cmd(
    as_json: bool = typer.Option(False, "--json"), config: Path | None = ConfigOption
) -> None:
    """Counts and sizes per store (Postgres tables, Redis keys, vectors)."""
    cfg = _load(config)
    report = _run_async(_with_app(cfg, lambda app: app.memory.stats())).to_dict()
    if as_json:
        _print_json(_jsonable(report))
        return
    for section, data in report.items():
        out.print(f"[bold]{section}[/]")
        for k, v in (data or {}).items():
            out.print(f"  {k}: {escape(str(v))}")


@memory_app.command("prune")
def memory_prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="report what would be deleted; delete nothing"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Delete history beyond the `retention:` limits of config.yaml, store by store.

    Never touches a running run or order intents, and keeps the latest checkpoint of every run.
    Exit 0 when every store was pruned, 1 when one was unavailable or failed (the others are
    still pruned), 2 for a bad configuration.
    """
    from alina.memory_store.retention import prune

    cfg = _load(config)
    with step("pruning ...", quiet=as_json):
        report = _run_async(prune(cfg, dry_run=dry_run))
    if as_json:
        _print_json(_jsonable(report.to_dict()))
    else:
        verb = "would delete" if dry_run else "deleted"
        table = Table(title="alina memory prune" + (" (dry run: nothing deleted)" if dry_run else ""))
        for col in ("store", "what", "rule"):
            table.add_column(col)
        table.add_column(verb, justify="right")
        for b in report.backends():
            for c in b.counts:
                table.add_row(b.backend, c.target, escape(c.rule), str(c.count))
        out.print(table)
        colors = {"ok": "green", "skipped": "dim", "unavailable": "red", "error": "red"}
        for b in report.backends():
            line = f"{b.backend:<9} [{colors[b.status]}]{b.status:<11}[/] {escape(b.location)}"
            out.print(line + (f": [red]{escape(b.error)}[/]" if b.error else ""))
            for note in b.notes:
                out.print(f"{'':<21} [dim]{escape(note)}[/]")
        if not report.ok:
            err.print("[red]not every store was pruned[/]: start the ones above (`alina up`), then run again")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILURE)
