"""``alina run``, ``alina route`` and ``alina chat``: tasks for the team, and the team session
that ``alina chat`` and the service's workers share."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from alina.cli._app import app
from alina.cli._common import (
    EXIT_FAILURE,
    EXIT_OK,
    ConfigOption,
    LiveOption,
    _fail,
    _guarded,
    _load,
    _print_json,
    _run_async,
    err,
    out,
)
from alina.config import AlinaConfig, load_config
from alina.progress import step
from alina.settings.service import RunMode

_COLORS = {
    "user": "bold white",
    "alina": "bold magenta",
    "trader": "cyan",
    "monitor": "green",
    "optimizer": "yellow",
}


def _print_event(e: Any) -> None:
    color = _COLORS.get(e.source, "white")
    tokens = (
        f" [dim]({e.prompt_tokens}+{e.completion_tokens} tok, {e.latency_ms / 1000:.1f}s)[/]"
        if e.prompt_tokens is not None and e.latency_ms is not None
        else ""
    )
    kind = {
        "ToolCallRequestEvent": " [dim]calls tool[/]",
        "ToolCallExecutionEvent": " [dim]tool result[/]",
        "ToolCallSummaryMessage": " [dim]reports[/]",
        "MemoryQueryEvent": " [dim]recalls from memory[/]",
    }.get(e.type, "")
    out.print(f"[{color}]{e.source}[/]{kind}{tokens}: {escape(e.content)}")


def _print_summary(r: Any) -> None:
    color = {"completed": "green", "stopped": "yellow", "failed": "red"}[r.status]
    out.print(
        f"[{color}]{r.status}[/] run {r.run_id}: {r.turns} turns, {r.model_calls} model calls, "
        f"{r.tool_calls} tool calls, {r.prompt_tokens}+{r.completion_tokens} tokens, {r.wall_s:.1f}s"
        + (f" [dim]({escape(r.stop_reason)})[/]" if r.stop_reason else "")
        + (f" [bold red]mode {r.mode}: no orders[/]" if r.mode in ("safe", "halt") else "")
    )
    check = getattr(r, "answer_check", None)
    if check:
        colour = {"passed": "green", "regenerated": "yellow"}.get(check["outcome"], "red")
        why = "; ".join(check["findings"][:3])
        detail = f" [dim]({escape(why)})[/]" if why else ""
        out.print(f"[dim]answer check:[/] [{colour}]{check['outcome']}[/]{detail}")
    if r.error:
        err.print(f"[red]reason:[/] {escape(r.error)}")


def _print_routing(r: Any) -> None:
    for d in r.routing:
        out.print(
            f"[dim]route -> {d.speaker or '(model)'} by {d.method} "
            f"(confidence {d.confidence:.2f}, candidates {list(d.candidates)}): {d.reason}[/]"
        )


@asynccontextmanager
async def _team_session(
    cfg: AlinaConfig, *, live: bool, on_event: Any, on_chunk: Any = None
) -> AsyncIterator[Any]:
    """The team of an :class:`alina.Alina` application, with everything it needs opened (one
    Postgres pool, Redis hot state, the desk, the tool-call recorder behind the skill loader,
    the vector memory) and closed in reverse afterwards. Inside the block, skills use the
    application's desk, market data and loader. ``on_chunk``: streamed text (the chat)."""
    from alina.api import Alina

    async with Alina(cfg, live=live, on_event=on_event, on_chunk=on_chunk) as app:
        runner = await app.runner()
        with app.bound():
            yield runner


async def _run_recorded(
    runner: Any, task: str | None, *, resume: str | None = None, quiet: bool = True
) -> Any:
    """One run (or the resume of ``resume``), with tool calls attributed to it in tool_calls."""
    import uuid

    from alina.skills.recorder import run_scope

    run_id = resume or uuid.uuid4().hex
    if not quiet:
        what = "resuming run" if resume else "run"
        err.print(f"[dim]{what} {run_id} (if it is cut: alina run --resume {run_id})[/]")
    with run_scope(run_id):
        if resume:
            return await runner.resume(run_id)
        return await runner.run(task, run_id=run_id)


async def _run_task(
    cfg: AlinaConfig,
    task: str | None,
    as_json: bool,
    explain: bool,
    live: bool = False,
    resume: str | None = None,
    mode: str = "normal",
) -> int:
    import uuid

    from alina.api import Alina
    from alina.team import AlreadyCompleted

    run_id = resume or uuid.uuid4().hex
    try:
        async with Alina(cfg, live=live, on_event=None if as_json else _print_event) as app:
            with step("loading the models and the memory ...", quiet=as_json):
                await app.runner()
            if not as_json:
                what = "resuming run" if resume else "run"
                err.print(f"[dim]{what} {run_id} (if it is cut: alina run --resume {run_id})[/]")
            if resume:
                report = await app.resume(run_id, mode=mode)
            else:
                report = await app.run(task or "", run_id=run_id, mode=mode)
            result: Any = report.raw  # the team's own result: what `--json` prints
    except AlreadyCompleted as done:  # resuming is idempotent: the goal is already reached
        if as_json:
            _print_json({"run_id": resume, "status": "completed", "note": str(done)})
        else:
            err.print(f"[dim]{escape(str(done))}[/]")
        return EXIT_OK
    if as_json:
        _print_json(result.to_json(), ensure_ascii=False)
    else:
        if explain:
            _print_routing(result)
        if result.resumed_from_turn is not None:
            err.print(f"[dim]resumed from turn {result.resumed_from_turn}[/]")
        _print_summary(result)
    return EXIT_OK if result.status == "completed" else EXIT_FAILURE


@app.command()
def run(
    task: str | None = typer.Argument(None, help="the task for ALINA's team (omit with --resume)"),
    resume: str | None = typer.Option(
        None, "--resume", metavar="RUN_ID", help="continue an interrupted run from its last checkpoint"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the stream"),
    explain_routing: bool = typer.Option(False, "--explain-routing", help="print every routing decision"),
    max_turns: int | None = typer.Option(None, min=1, max=200, help="override team.max_turns"),
    mode: RunMode = typer.Option("normal", "--mode", help="safe: no order reaches the trader"),
    live: bool = LiveOption,
    config: Path | None = ConfigOption,
) -> None:
    """Run one task headless: stream the conversation, then a summary (exit 0 when completed).

    Every turn is checkpointed; `alina run --resume RUN_ID` continues a run that was cut. The
    turn limit counts the whole run, the wall-time limit each attempt."""
    if resume is not None and task is not None:
        _fail(typer.BadParameter("give a TASK or --resume RUN_ID, not both"))
    if resume is None and (task is None or not task.strip()):
        _fail(typer.BadParameter("TASK is empty: say what the team should do (or --resume RUN_ID)"))
    if resume is not None and not resume.strip():
        _fail(typer.BadParameter("--resume needs a run id (`alina runs list` shows them)"))
    overrides = {"team.max_turns": max_turns} if max_turns else None
    cfg = _guarded(lambda: load_config(config, overrides=overrides))
    resume = resume.strip() if resume else None
    code = _run_async(_run_task(cfg, task, as_json, explain_routing, live, resume=resume, mode=mode))
    raise typer.Exit(code)


async def _route(cfg: AlinaConfig, raw: str, mode: str) -> dict[str, Any]:
    from alina.models import Governor, build_agent_client
    from alina.team import SnapshotError, build_router, parse_snapshot

    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SnapshotError(
            f"stdin is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); expected a "
            'list like [{"source": "user", "content": "..."}]'
        ) from None
    router = build_router(cfg, mode=mode)  # type: ignore[arg-type]
    turns = parse_snapshot(data, router.names)
    decision = router.decide(turns)
    if decision.speaker is None:  # only now load ALINA's model: most snapshots never need it
        router.client = build_agent_client(cfg, "alina", governor=Governor(1), label="selector")
        try:
            decision = await router.route(turns)
        finally:
            await router.client.close()
    return {"speaker": decision.speaker, "method": decision.method, "confidence": decision.confidence}


@app.command()
def route(
    mode: RunMode = typer.Option("normal", "--mode", help="safe: no order reaches the trader"),
    config: Path | None = ConfigOption,
) -> None:
    """Read ONE conversation snapshot as JSON on stdin and print who speaks next.

    Input: a list of {"source", "content"} (source "user" or an agent name; optional "type":
    text | tool_call | tool_result). Output: {"speaker", "method", "confidence"} as JSON. Uses
    the team's router; ALINA's model is loaded only when the rules are not confident.
    """
    cfg = _load(config)
    raw = sys.stdin.read()
    result = _run_async(_route(cfg, raw, mode))
    _print_json(result)


@app.command()
def chat(
    config: Path | None = ConfigOption,
    live: bool = LiveOption,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", help="Serve /metrics, /healthz and POST /alerts on monitoring.host:PORT."
    ),
    resume: str | None = typer.Option(
        None, "--resume", "-r", metavar="[ID]", help="continue a chat session (no ID or `last`: the latest)"
    ),
    list_sessions: bool = typer.Option(False, "--list", help="list the chat sessions and exit"),
) -> None:
    """Console chat with ALINA (streamed answers, /help for commands, Ctrl-C cancels a turn,
    Ctrl-D or /quit leaves). Every task is a recorded run; `--resume` continues a session."""
    from alina.chat import chat_command

    raise typer.Exit(chat_command(_load(config), live, metrics_port, resume, list_sessions))
