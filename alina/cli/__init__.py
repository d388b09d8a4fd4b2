"""The ``alina`` command line (typer + rich), one module per group of commands.

``_app``: the typer application and its sub-apps; ``_common``: what every command shares
(consoles, options, :func:`_load`, :func:`_fail`, :func:`_run_async`, exit codes); ``_services``:
config, up, down, doctor, db; ``_team``: run, route, chat; ``_runs`` and ``_memory``: the runs
and memory sub-apps. Importing the modules registers their commands; the names below stay
importable from ``alina.cli``.

Exit codes are decided in one place, :func:`_exit_code`: 0 success, 1 a failure the operator
or a retry can fix (a run that failed or stopped, a service that is down), 2 bad input or
configuration (nothing was started).
"""

from __future__ import annotations

import os
import sys

from alina.cli._app import app, config_app, db_app, memory_app, runs_app
from alina.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    EXIT_OK,
    CommandFailed,
    ConfigOption,
    LiveOption,
    _apply_migrations,
    _doctor_checks,
    _exit_code,
    _fail,
    _guarded,
    _healthy,
    _jsonable,
    _load,
    _print_json,
    _RedactingConsole,
    _run_async,
    _services,
    _with_app,
    _with_pg,
    err,
    load_config,
    out,
)
from alina.cli._memory import (
    _known_agent,
    memory_add,
    memory_forget,
    memory_graph,
    memory_prune,
    memory_search,
    memory_stats_cmd,
)
from alina.cli._runs import runs_list, runs_show
from alina.cli._services import config_check, db_migrate, db_status, doctor, down, up
from alina.cli._team import (
    _print_event,
    _print_routing,
    _print_summary,
    _route,
    _run_recorded,
    _run_task,
    _team_session,
    chat,
    route,
    run,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_OK",
    "CommandFailed",
    "ConfigOption",
    "LiveOption",
    "_RedactingConsole",
    "_apply_migrations",
    "_doctor_checks",
    "_exit_code",
    "_fail",
    "_guarded",
    "_healthy",
    "_jsonable",
    "_known_agent",
    "_load",
    "_print_event",
    "_print_json",
    "_print_routing",
    "_print_summary",
    "_route",
    "_run_async",
    "_run_recorded",
    "_run_task",
    "_services",
    "_team_session",
    "_with_app",
    "_with_pg",
    "app",
    "chat",
    "config_app",
    "config_check",
    "db_app",
    "db_migrate",
    "db_status",
    "doctor",
    "down",
    "err",
    "load_config",
    "main",
    "memory_add",
    "memory_app",
    "memory_forget",
    "memory_graph",
    "memory_prune",
    "memory_search",
    "memory_stats_cmd",
    "out",
    "route",
    "run",
    "runs_app",
    "runs_list",
    "runs_show",
    "up",
]


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    from alina.chat import optional_resume

    sys.argv[1:] = optional_resume(sys.argv[1:])
    app()
