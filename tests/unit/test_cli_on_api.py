"""The CLI's run, runs, memory, status and backtest commands are written on the Python API (one
code path): each reaches the stores, the desk and the team through :class:`alina.Alina`."""

from __future__ import annotations

import inspect

from alina import cli
from alina.runtime import backtest_cli, status_cli


def test_commands_go_through_the_application() -> None:
    src = {
        name: inspect.getsource(fn)
        for name, fn in {
            "run": cli._run_task,
            "chat session": cli._team_session,
            "runs list": cli.runs_list,
            "runs show": cli.runs_show,
            "memory graph": cli.memory_graph,
            "memory search": cli.memory_search,
            "memory add": cli.memory_add,
            "memory forget": cli.memory_forget,
            "memory stats": cli.memory_stats_cmd,
            "status": status_cli.status,
            "status --watch": status_cli._watch,
            "backtest": backtest_cli._run,
        }.items()
    }
    for name in ("run", "chat session", "status --watch"):
        assert "Alina(cfg" in src[name], name
    for name in (
        "runs list",
        "runs show",
        "memory graph",
        "memory search",
        "memory add",
        "memory forget",
        "memory stats",
        "status",
    ):
        assert "_with_app(" in src[name] and "lambda app: app." in src[name], name
    assert "api_backtest(" in src["backtest"]
    for text in src.values():  # nothing opens a store, the desk or the memory beside the application
        for internal in ("RunStore(", "VectorMemory(", "open_desk(", "gather_status(", "run_backtest("):
            assert internal not in text
