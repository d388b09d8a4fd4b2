"""The console chat: one ALINA team for the whole conversation, a task per input.

Text streams in as the model writes it; tool calls and results show as one dim line each;
every task ends with a one-line summary. Ctrl-C during a task stops that task (the run is
recorded as stopped, the chat goes on); Ctrl-D or /quit leaves with exit status 0. Every task
is a recorded run, and the session (which runs belong to this conversation) is stored, so
``alina chat --resume [ID]`` reprints the conversation and the team continues from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from alina.chat.commands import dispatch
from alina.chat.reader import LineReader
from alina.chat.sessions import ChatSession as StoredSession
from alina.chat.sessions import ChatSessions
from alina.chat.view import ChatView
from alina.config import AlinaConfig

__all__ = ["ChatSession", "run_chat"]

RESUME_SHOW_TASKS = 10
"""A resumed session reprints its last this many tasks."""


@dataclass
class ChatSession:
    """What the slash commands can see of a running chat."""

    config: AlinaConfig
    runner: Any
    sessions: ChatSessions
    session: StoredSession
    console: Console
    view: ChatView
    tokens: list[int] = field(default_factory=lambda: [0, 0])


def _quiet_frameworks() -> None:
    """The run's own summary reports failures; AutoGen's logged tracebacks (e.g. of a cancelled
    turn) would only scroll the conversation away."""
    for name in ("autogen_core", "autogen_agentchat", "autogen_core.events", "autogen_core.trace"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


async def _replay(chat: ChatSession, store: Any) -> None:
    """Reprint the session's last tasks from the run store."""
    runs = chat.session.runs[-RESUME_SHOW_TASKS:]
    skipped = len(chat.session.runs) - len(runs)
    if skipped:
        chat.console.print(f"[dim]... {skipped} earlier task(s) not shown[/]")
    for seq, run_id in runs:
        run = await store.get_run(run_id)
        if run is None:
            continue
        if seq == chat.session.reset_seq + 1 and chat.session.reset_seq:
            chat.console.print("[dim]--- /reset: the team's context starts here ---[/]")
        chat.view.replay("user", "TextMessage", run["task"])
        for m in run["messages"]:
            if m["source"] != "user":
                chat.view.replay(m["source"], m["type"], str(m["content"]))
        chat.console.print(f"[dim]{run['status']} · run {run_id[:8]}[/]")


async def _one_task(chat: ChatSession, line: str) -> None:
    """Run one task (Ctrl-C meanwhile cancels it: see :func:`_sigint`)."""
    from alina.cli._team import _run_recorded

    result = await _run_recorded(chat.runner, line)
    chat.tokens[0] += result.prompt_tokens
    chat.tokens[1] += result.completion_tokens
    chat.view.summary(result)
    await chat.sessions.add_run(chat.session, result.run_id, line)


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and let it finish its cleanup (a query it was running is
    cancelled on the server) before the event loop closes."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _sigint(chat_runner: Any, view: ChatView) -> bool:
    """For the whole chat, Ctrl-C (SIGINT) cancels the running turn and nothing else (at the
    prompt the terminal is in raw mode: prompt_toolkit reads Ctrl-C as a key and clears the
    input). Returns whether the handler was installed (only possible in the main thread)."""

    def interrupt() -> None:
        if chat_runner.cancel("cancelled with Ctrl-C"):
            view.interrupted()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, interrupt)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
        return False
    return True


async def run_chat(
    cfg: AlinaConfig,
    *,
    live: bool = False,
    metrics_port: int | None = None,
    resume: str | None = None,
    console: Console,
    session_factory: Any,
    healthy: Any,
) -> int:
    """The chat loop; returns the exit status. ``resume``: a session id (prefix), ``""`` for
    the latest session, None for a new one. ``session_factory(cfg, live=, on_event=,
    on_chunk=)`` opens the team (the CLI's ``_team_session``); ``healthy()`` the health check
    that ends an automatic safe mode."""
    from alina.progress import step
    from alina.runtime.modes import watch_health

    _quiet_frameworks()
    view = ChatView(console)
    sessions = ChatSessions(cfg.postgres.dsn(), connect_timeout=int(cfg.postgres.connect_timeout_s))
    reader = LineReader()
    # the session first: a wrong --resume ID fails before the models load
    await sessions.open()
    stored = await (sessions.get(resume or None) if resume is not None else sessions.create())
    async with contextlib.AsyncExitStack() as stack:
        with step("loading the models and the memory ..."):
            runner = await stack.enter_async_context(
                session_factory(cfg, live=live, on_event=view.event, on_chunk=view.chunk)
            )
        # an automatic safe mode ends once the health checks pass for resilience.recover_after_s
        watcher = asyncio.create_task(watch_health(runner.modes, healthy))
        stack.push_async_callback(_cancel_and_wait, watcher)
        # alert rules on this process's live figures (actions undone on clear) + /metrics, the
        # same entry point alina serve uses
        from alina.monitoring.live import observability, paper_refresh
        from alina.skills.bindings import current_bindings

        bound = current_bindings()  # the session's application: its desk
        obs = await stack.enter_async_context(
            observability(
                cfg,
                modes=runner.modes,
                port=metrics_port,
                refresh=paper_refresh(bound.desk if bound is not None else None),
            )
        )
        if obs.server is not None:
            console.print(f"metrics: {obs.server.url}/metrics")
        chat = ChatSession(cfg, runner, sessions, stored, console, view)
        if _sigint(runner, view):
            stack.callback(asyncio.get_running_loop().remove_signal_handler, signal.SIGINT)
        if resume is not None:
            await _replay(chat, runner.sink)
            if stored.context_runs:
                restored = 0
                for run_id in reversed(stored.context_runs):  # the newest run that saved a turn
                    restored = await runner.restore(run_id)
                    if restored:
                        break
                console.print(
                    f"[dim]resumed session {stored.id}: the team has {restored} messages of context[/]"
                )
        console.print(
            f"[bold magenta]ALINA[/] ready · session {stored.id} · /help for commands · Ctrl-D to leave"
        )
        while True:
            try:
                line = await reader.read()
            except EOFError:
                break
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh input, not the end
                continue
            line = line.strip()
            if not line:
                continue
            try:
                if line.startswith("/"):
                    if not await dispatch(chat, line):
                        break
                    continue
                await _one_task(chat, line)
            except Exception as exc:
                console.print(f"[bold red]error:[/] {escape(str(exc))}")
        console.print(f"[dim]bye · resume with: alina chat --resume {stored.id}[/]")
    return 0
