"""``alina optimize review [--agent NAME] [--json]``: run the critic loop now (see
:mod:`alina.team.review`); ``alina optimize queue``: the queued reviews.

Exit codes: 0 the review ran (whatever it promoted); 1 a review failed or was refused by the
budget, or Postgres/the models are unavailable; 2 bad input (unknown agent, invalid config)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from alina.settings.agents import AgentName

app = typer.Typer(
    help="The optimizer: review agents' prompts and models (critic loop, gate, ladder).", no_args_is_help=True
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


def _print(report: Any) -> None:
    for r in report.rollbacks:
        out.print(
            f"[yellow]rolled back[/] {r.agent} v{r.version} -> v{r.new_version} "
            f"(text of v{r.to_version}): {escape(r.reason)}"
        )
    for name, why in report.skipped.items():
        out.print(f"[dim]{name}: not reviewed ({escape(why)})[/]")
    for rv in report.reviews:
        colour = {"done": "green", "refused": "yellow", "failed": "red"}[rv.status]
        out.print(f"[bold {colour}]{rv.agent}[/] ({rv.trigger}, {rv.status}): {escape(rv.message)}")
        p, s = rv.projected, rv.spent
        out.print(
            f"  budget: projected {p.model_calls} calls, {p.tokens} tokens, {p.wall_s:.0f} s; "
            f"spent {s.model_calls} calls ({s.critic_calls} critic), {s.tokens} tokens, {s.wall_s:.0f} s"
        )
        if rv.shrunk:
            out.print(f"  shrunk to fit: {escape(', '.join(rv.shrunk))}")
        for note in rv.notes:
            out.print(f"  [dim]{escape(note)}[/]")
        for c in rv.candidates:
            figs = (
                f" held-out {c.current_mean:.3f} -> {c.candidate_mean:.3f}, p={c.p_value:.4f}"
                if c.candidate_mean is not None and c.p_value is not None
                else ""
            )
            ver = f" v{c.version}" if c.version is not None else ""
            out.print(f"  {c.status:<8} {c.origin:<7}{ver} {escape(c.summary)}{figs}: {escape(c.reason)}")


@app.command("review")
def review(
    agent: AgentName | None = typer.Option(
        None,
        "--agent",
        "-a",
        help="review this agent now (default: the "
        "agents with a queued review or a rolling score below the threshold)",
    ),
    as_json: bool = typer.Option(False, "--json", help="the report as one JSON object (no progress)"),
    config: Path | None = ConfigOption,
) -> None:
    """Review agents: critic and few-shot candidates, the held-out gate, the model ladder,
    automatic rollbacks. Every candidate is stored with its figures (`alina prompts list`)."""
    from alina.cli._common import _apply_migrations, _fail, _load, _run_async, _with_pg
    from alina.memory_store.prompts import PromptVersionError
    from alina.team.review import ReviewError, review_all

    cfg = _load(config)
    show = not as_json and sys.stderr.isatty()

    async def go(progress: Any) -> Any:
        await _with_pg(cfg, _apply_migrations)
        return await review_all(cfg, agent, progress=progress)

    try:
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                tasks: dict[str, Any] = {}

                def progress(step: str, done: int, total: int) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(step, total=total)
                    bar.update(tasks[step], completed=done, total=total)

                report = _run_async(go(progress))
        else:
            report = _run_async(go(None))
    except (ReviewError, PromptVersionError) as exc:
        _fail(typer.BadParameter(str(exc)))
    if as_json:
        sys.stdout.write(json.dumps(report.to_json()) + "\n")
    else:
        _print(report)
    if any(r.status != "done" for r in report.reviews):
        raise typer.Exit(1)


@app.command("queue")
def queue(
    as_json: bool = typer.Option(False, "--json", help="one JSON array"),
    config: Path | None = ConfigOption,
) -> None:
    """Reviews queued by low evaluation scores (the next review takes them)."""
    from alina.cli._common import _apply_migrations, _load, _run_async, _with_pg
    from alina.memory_store.optimizer import OptimizerStore

    cfg = _load(config)

    async def go() -> Any:
        await _with_pg(cfg, _apply_migrations)
        store = OptimizerStore.from_config(cfg)
        await store.set_threshold(cfg.optimizer.threshold)
        return await store.queued()

    rows = _run_async(go())
    if as_json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "id": q.id,
                        "agent": q.agent,
                        "trigger": q.trigger,
                        "score": q.score,
                        "run_id": q.run_id,
                        "queued_at": str(q.queued_at),
                    }
                    for q in rows
                ]
            )
            + "\n"
        )
        return
    if not rows:
        out.print("no review queued")
    for q in rows:
        score = f" score {q.score:.3f}" if q.score is not None else ""
        out.print(f"{q.agent:<10} {q.trigger}{score} run {q.run_id or '-'} queued {str(q.queued_at)[:19]}")
