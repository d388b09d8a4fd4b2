"""The chat's slash commands: each one reads the live session and prints with the chat's view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from alina.chat.app import ChatSession

__all__ = ["COMMANDS", "HELP_KEYS", "Command", "dispatch"]

HELP_KEYS = (
    ("Enter", "send"),
    ("Alt-Enter / Esc Enter", "new line (or end a line with \\)"),
    ("Up / Down", "earlier inputs"),
    ("Ctrl-C", "cancel the running turn (at the prompt: clear the input)"),
    ("Ctrl-D", "leave (also /quit)"),
)


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    help: str
    run: Callable[[ChatSession, str], Awaitable[bool]]
    """Returns False to end the chat."""


async def _help(chat: ChatSession, _arg: str) -> bool:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for c in COMMANDS.values():
        table.add_row(f"/{c.name} {c.args}".rstrip(), c.help)
    for key, what in HELP_KEYS:
        table.add_row(key, what)
    chat.console.print(table)
    return True


async def _agents(chat: ChatSession, _arg: str) -> bool:
    from alina.skills.loader import default_loader

    cfg, team = chat.config, chat.runner.team
    table = Table("agent", "model", "prompt", "tools", box=None, pad_edge=False)
    for name, prompt in team.prompts.items():
        model = cfg.model_for(name)
        tools = ", ".join(s.name for s in default_loader().skills_for(name)) or "-"
        table.add_row(name, f"{model.provider}:{model.model}", f"v{prompt.version}", escape(tools))
    chat.console.print(table)
    return True


async def _memory(chat: ChatSession, arg: str) -> bool:
    if not arg.strip():
        chat.console.print("usage: /memory QUERY   (e.g. /memory BTC price)")
        return True
    memory = chat.runner.team.memory
    if memory is None:
        chat.console.print("[yellow]memory is off or unavailable in this session[/]")
        return True
    from alina.memory_store.commands import search_memory

    report = await search_memory(memory, arg.strip(), top_k=5)
    if not report.hits:
        chat.console.print("[dim]no memories match[/]")
    for h in report.hits:
        chat.view.message(f"{h.score:.2f}", f"[{h.kind}] {h.text}")
    return True


async def _mode(chat: ChatSession, arg: str) -> bool:
    want = arg.strip().lower()
    if want:
        if want not in ("normal", "safe"):
            chat.console.print("usage: /mode [normal|safe]   (safe: read and report only, no orders)")
            return True
        chat.runner.set_mode(want)
    modes = chat.runner.modes
    await modes.refresh()
    note = " (this chat is held in safe mode)" if want == "safe" else ""
    color = "green" if modes.current == "normal" else "bold red"
    chat.console.print(f"mode [{color}]{modes.current}[/]{note}")
    return True


async def _prompts(chat: ChatSession, _arg: str) -> bool:
    table = Table("agent", "version", "digest", "first line", box=None, pad_edge=False)
    for name, p in chat.runner.team.prompts.items():
        first = next((line for line in p.system.splitlines() if line.strip()), "")
        table.add_row(name, f"v{p.version}", p.digest[:8], escape(first[:40]))
    chat.console.print(table)
    return True


async def _status(chat: ChatSession, _arg: str) -> bool:
    s = chat.session
    tokens = chat.tokens
    memory = "on" if chat.runner.team.memory is not None else "off"
    lines = [
        f"session {s.id} · {len(s.runs)} task{'s' if len(s.runs) != 1 else ''}"
        f" · since {str(s.started_at)[:19]}",
        f"mode {chat.runner.modes.current} · memory {memory} · tokens this chat {tokens[0]}+{tokens[1]}",
        f"resume later: alina chat --resume {s.id}",
    ]
    for line in lines:
        chat.console.print(line)
    return True


async def _reset(chat: ChatSession, _arg: str) -> bool:
    await chat.runner.reset()
    await chat.sessions.reset(chat.session)
    chat.console.print("[dim]context cleared: the team starts fresh (the transcript stays in the session)[/]")
    return True


async def _quit(_chat: ChatSession, _arg: str) -> bool:
    return False


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("help", "", "this list", _help),
        Command("agents", "", "the team: model, prompt version, tools", _agents),
        Command("memory", "QUERY", "search the team's memory", _memory),
        Command("mode", "[normal|safe]", "show the system mode, or hold this chat in safe mode", _mode),
        Command("prompts", "", "each agent's prompt version", _prompts),
        Command("status", "", "this session: id, tasks, mode, tokens", _status),
        Command("reset", "", "forget the conversation (start fresh)", _reset),
        Command("quit", "", "leave (Ctrl-D too)", _quit),
    )
}


async def dispatch(chat: ChatSession, line: str) -> bool:
    """Run a slash command line; returns False when the chat should end."""
    name, _, arg = line[1:].partition(" ")
    command = COMMANDS.get(name.lower()) or (COMMANDS["quit"] if name.lower() == "exit" else None)
    if command is None:
        chat.console.print(f"unknown command /{escape(name)}: /help lists them")
        return True
    return await command.run(chat, arg)


def describe() -> list[tuple[str, str]]:
    """(command, what it does) for the README and /help."""
    return [(f"/{c.name} {c.args}".rstrip(), c.help) for c in COMMANDS.values()]
