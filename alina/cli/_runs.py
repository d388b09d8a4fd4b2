"""``alina runs``: list and show the recorded runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from alina.cli._app import runs_app
from alina.cli._common import ConfigOption, _fail, _jsonable, _load, _print_json, _run_async, _with_app, out


@runs_app.command("list")
def runs_list(
    limit: int = typer.Option(20, min=1, max=1000),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Recorded runs, newest first: id, status, task and start time (`interrupted`: a run
    left `running` by a process that died; `--json` keeps the status and adds `interrupted`)."""
    cfg = _load(config)

    rows = _run_async(_with_app(cfg, lambda app: app.runs.list(limit=limit)))
    if as_json:
        _print_json(_jsonable(rows))
        return
    table = Table(title="runs (newest first)")
    for col in ("id", "status", "started", "finished", "turns", "job", "task"):
        table.add_column(col)
    for r in rows:
        status = "interrupted" if r.get("interrupted") else r["status"]
        table.add_row(
            r["id"],
            status,
            str(r["started_at"])[:19],
            str(r["finished_at"] or "")[:19],
            str(r["turns"]),
            r.get("job") or "",
            escape(r["task"][:60]),
        )
    out.print(table)
    if any(r.get("interrupted") for r in rows):
        out.print("[dim]interrupted: no process is running it; continue with `alina run --resume ID`[/]")


@runs_app.command("show")
def runs_show(
    run_id: str, as_json: bool = typer.Option(False, "--json"), config: Path | None = ConfigOption
) -> None:
    """One run and its messages; for a run still going, also its live position from Redis
    (`live`: turn, last speaker and the newest messages, which may be ahead of Postgres)."""
    cfg = _load(config)

    run = _run_async(_with_app(cfg, lambda app: app.runs.get(run_id)))
    if run is None:
        from alina.service.cli import queued_run

        queued = queued_run(cfg, run_id)  # submitted, not started yet
        if queued is not None:
            _print_json(_jsonable({"id": run_id, **queued})) if as_json else out.print(
                f"run {run_id} [{queued['status']}] {escape(queued['task'] or '')}"
            )
            return
        _fail(typer.BadParameter(f"no run with id {run_id!r} (see `alina runs list`)"))
    if as_json:
        _print_json(_jsonable(run))
        return
    status = "interrupted (resume with `alina run --resume ID`)" if run.get("interrupted") else run["status"]
    out.print(f"run {run['id']} [{status}] {escape(run['task'])}")

    def line(m: dict[str, Any], note: str = "") -> None:
        text = escape(str(m["content"])[:200])
        out.print(f"  {m['seq']:>3} {m['source']:<10} {m['type']:<24} {text}{note}")

    for m in run["messages"]:
        line(m)
    for e in run.get("evaluations", []):
        outcome = (e.get("details") or {}).get("outcome", "passed" if e["passed"] else "failed")
        where = f"#{e['message_seq']} {e['agent']} {e['name']}"
        out.print(f"  [bold]score[/] {where}: {e['score']:.2f} ({outcome})")
    for d in run.get("decisions", []):
        out.print(f"  [bold]decision[/] #{d['message_seq']} {d['agent']}: {escape(str(d['decision'])[:200])}")
    live = run.get("live")
    if live:
        stored = max((m["seq"] for m in run["messages"]), default=0)
        for m in live["recent"]:
            if m["seq"] > stored:
                line(m, "  [dim](live, not yet in Postgres)[/]")
        out.print(f"[dim]live: turn {live.get('turn', 0)}, last speaker {live.get('last_speaker', '-')}[/]")
