"""The console chat (``alina chat``): streamed answers, slash commands, resumable sessions.

:func:`chat_command` is what the CLI calls; the loop is in :mod:`alina.chat.app`, the screen in
:mod:`alina.chat.view`, the input in :mod:`alina.chat.reader` (prompt_toolkit), the slash
commands in :mod:`alina.chat.commands` and the stored sessions in :mod:`alina.chat.sessions`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["chat_command", "optional_resume"]


def optional_resume(argv: list[str]) -> list[str]:
    """``alina chat --resume`` with no ID means the latest session: give the option its value
    ``last`` (click options cannot take an optional value)."""
    if not argv or argv[0] != "chat":
        return argv
    out = list(argv)
    for i, arg in enumerate(out):
        if arg in ("--resume", "-r") and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, "last")
            break
    return out


def chat_command(
    cfg: Any, live: bool, metrics_port: int | None, resume: str | None, list_sessions: bool
) -> int:
    """Run ``alina chat`` with its options; returns the exit status."""
    from rich.table import Table

    from alina import cli
    from alina.chat.app import run_chat
    from alina.chat.sessions import ChatSessions, SessionNotFound

    if list_sessions:
        rows = cli._run_async(ChatSessions(cfg.postgres.dsn()).list())
        table = Table("id", "updated", "tasks", "first task", title="chat sessions (newest first)")
        for r in rows:
            table.add_row(r["id"], str(r["updated_at"])[:19], str(r["runs"]), r["title"][:50])
        cli.out.print(table)
        return cli.EXIT_OK
    if resume is not None and resume.strip().lower() in ("", "last", "latest"):
        resume = ""
    console = cli._RedactingConsole(highlight=False)
    try:
        return cli._run_async(
            run_chat(
                cfg,
                live=live,
                metrics_port=metrics_port,
                resume=resume,
                console=console,
                session_factory=cli._team_session,
                healthy=lambda: cli._healthy(cfg),
            )
        )
    except SessionNotFound as exc:
        cli.err.print(f"[bold red]error:[/] {exc}")
        return cli.EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.print("\nbye")
        return cli.EXIT_OK
