"""What the console chat prints: streamed text, messages, tool calls, summaries (rich).

Every line fits the terminal: a speaker's label takes a fixed column and its text wraps at word
boundaries under it (a word longer than a whole line is the only thing ever split), both while
the text streams in piece by piece and when a finished message is printed whole. Nothing a
secret could hide in is printed unmasked: streamed words and finished messages go through
:func:`~alina._secrets.redact_text` (finished messages are masked by the run loop already).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from alina._secrets import redact_text

__all__ = ["COLORS", "LABEL_WIDTH", "ChatView", "WordWrapper", "mask_word", "same_text"]

COLORS = {
    "you": "bold white",
    "user": "bold white",
    "alina": "bold magenta",
    "trader": "cyan",
    "monitor": "green",
    "optimizer": "yellow",
}
LABEL_WIDTH = 10
"""Columns of the speaker label ("optimizer" and a space); text starts after it."""


def mask_word(word: str, previous: str) -> str:
    """``word`` with secrets masked: key-shaped words, and the value of a secret-named pair
    split over two words (``password: hunter2``, ``"api_key": "..."``)."""
    masked = redact_text(word)
    if previous:
        pair = f"{previous} {word}"
        redacted = redact_text(pair)
        if redacted != pair and redacted.startswith(previous + " "):
            masked = redacted[len(previous) + 1 :]
    return masked


def same_text(a: str, b: str) -> bool:
    """Whether two texts say the same thing, whitespace aside (the stream vs the final message)."""
    return a.split() == b.split()


class WordWrapper:
    """Lays out text that arrives in pieces: whole words only, wrapped at ``width``, every line
    after the first indented by ``indent`` columns (the label column). ``write`` gets the text
    to put on the screen, in order; a word is written once it is complete (a space or a newline
    ends it), so it never has to move, and a word that would cross the right edge starts the
    next line instead. ``mask(word, previous_word)`` is applied to each complete word before it
    is written (the previous word lets it see a ``password: VALUE`` pair)."""

    def __init__(
        self,
        write: Callable[[str], None],
        width: int,
        indent: int,
        mask: Callable[[str, str], str] = lambda word, _prev: word,
    ) -> None:
        self.write = write
        self.width = max(width, indent + 20)
        self.indent = indent
        self.mask = mask
        self.column = indent  # the label is already on the screen
        self.word = ""
        self.prev = ""  # the previous word as generated (unmasked), for ``mask``
        self.space = False  # a space is due before the next word on this line
        self.text: list[str] = []  # everything fed, for comparing with the final message

    def feed(self, piece: str) -> None:
        self.text.append(piece)
        for ch in piece:
            if ch == "\n":
                self._flush_word()
                self._newline()
            elif ch.isspace():
                self._flush_word()
                if self.column > self.indent:
                    self.space = True
            else:
                self.word += ch

    def finish(self) -> str:
        """Write the last word and end the line; returns the whole text fed."""
        self._flush_word()
        self.write("\n")
        return "".join(self.text)

    def _newline(self) -> None:
        self.write("\n" + " " * self.indent)
        self.column, self.space = self.indent, False

    def _flush_word(self) -> None:
        if not self.word:
            return
        word, self.prev, self.word = self.mask(self.word, self.prev), self.word, ""
        room = self.width - self.column - (1 if self.space else 0)
        if len(word) > room and self.column > self.indent:
            self._newline()
        elif self.space:
            self.write(" ")
            self.column += 1
        self.space = False
        while len(word) > self.width - self.column:  # longer than a whole line: fold it
            cut = self.width - self.column
            self.write(word[:cut])
            self._newline()
            word = word[cut:]
        self.write(word)
        self.column += len(word)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 1)] + "…"


class ChatView:
    """Renders a chat on ``console`` (a terminal: colours; a pipe: plain text)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._stream: WordWrapper | None = None
        self._stream_source: str | None = None
        self._streamed: dict[str, str] = {}  # agent -> text streamed for its message in progress

    # -- pieces of text as they are generated ----------------------------------------------------
    def chunk(self, source: str, text: str) -> None:
        if self._stream is None or self._stream_source != source:
            self._end_stream()
            self._label(source)
            self._stream_source = source
            self._stream = WordWrapper(self._raw, self.console.width, LABEL_WIDTH, mask=mask_word)
        self._stream.feed(text)

    def _raw(self, text: str) -> None:
        self.console.file.write(text)
        self.console.file.flush()

    def _label(self, source: str) -> None:
        color = COLORS.get(source, "white")
        self.console.print(Text(source[: LABEL_WIDTH - 1].ljust(LABEL_WIDTH), style=color), end="")

    def _end_stream(self) -> None:
        if self._stream is not None and self._stream_source is not None:
            self._streamed[self._stream_source] = self._stream.finish()
        self._stream, self._stream_source = None, None

    # -- finished messages and events ------------------------------------------------------------
    def message(self, source: str, text: str, *, style: str = "") -> None:
        """A whole message under its label, wrapped at words."""
        grid = Table.grid(padding=0)
        grid.add_column(width=LABEL_WIDTH, no_wrap=True)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row(
            Text(source[: LABEL_WIDTH - 1], style=COLORS.get(source, "white")), Text(text, style=style)
        )
        self.console.print(grid)

    def note(self, text: str, style: str = "dim") -> None:
        """A line in the text column with no speaker (tool results, notices)."""
        width = max(self.console.width - LABEL_WIDTH, 20)
        self.console.print(Text(" " * LABEL_WIDTH + _one_line(text, width), style=style))

    def event(self, e: Any) -> None:
        """A finished message or event of the run (``alina.team.RunEvent``)."""
        self._end_stream()
        if e.source == "user":
            return  # the person typed it; it is on the screen already
        width = max(self.console.width - LABEL_WIDTH, 20)
        if e.type == "ToolCallRequestEvent":
            self.message(e.source, _one_line("⚙ " + _calls(e.content), width), style="dim")
        elif e.type == "ToolCallExecutionEvent":
            self.note("↳ " + e.content)
        elif e.type == "MemoryQueryEvent":
            n = len([line for line in e.content.splitlines() if line.strip()])
            self.message(e.source, f"· recalled {n} memor{'y' if n == 1 else 'ies'}", style="dim")
        else:
            streamed = self._streamed.pop(e.source, None)
            if streamed is None:
                self.message(e.source, e.content)
            elif not same_text(redact_text(streamed), e.content):
                why = (
                    "answer check: the checked answer replaces the streamed text above"
                    if e.source == "alina"
                    else "the final text replaces the streamed text above (retried)"
                )
                self.note("↻ " + why, style="yellow")
                self.message(e.source, e.content, style="bold")

    def interrupted(self) -> None:
        """Ctrl-C during a turn: a line saying it stops (over the terminal's ``^C`` echo)."""
        self._end_stream()
        self._raw("\r")
        self.note("^C: stopping this turn ...", style="yellow")

    def summary(self, r: Any) -> None:
        """One dim line after each task: status, counts, tokens, time, answer check."""
        self._end_stream()
        self._streamed.clear()
        color = {"completed": "green", "stopped": "yellow", "failed": "red"}.get(r.status, "white")
        status = "cancelled" if r.stop_reason.startswith("cancelled") else r.status
        parts = [
            f"[{color}]{status}[/]",
            f"{r.turns} turn{'s' if r.turns != 1 else ''}",
            f"{r.prompt_tokens}+{r.completion_tokens} tok",
            f"{r.wall_s:.1f}s",
        ]
        check = getattr(r, "answer_check", None)
        if check:
            colour = {"passed": "green", "regenerated": "yellow"}.get(check["outcome"], "red")
            parts.append(f"check [{colour}]{check['outcome']}[/]")
        if r.mode in ("safe", "halt"):
            parts.append(f"[bold red]mode {r.mode}: no orders[/]")
        self.console.print("[dim]" + " · ".join(parts) + f" · run {r.run_id[:8]}[/]")
        if status == "cancelled":
            self.console.print("[dim]turn cancelled; the run is recorded as stopped. Type the next task.[/]")
        elif r.error:
            self.console.print(f"[red]reason:[/] {escape(r.error)}")

    def replay(self, source: str, type_: str, content: str) -> None:
        """A stored message of a resumed session (as :meth:`event` would have shown it)."""
        if source == "user":
            self.message("you", content)
            return
        self.event(_Row(source, type_, content))


class _Row:
    def __init__(self, source: str, type_: str, content: str) -> None:
        self.source, self.type, self.content = source, type_, content


def _calls(content: str) -> str:
    """``name(arg=value, ...)`` for the tool calls of a ToolCallRequestEvent's stored JSON."""
    import json

    try:
        calls = json.loads(content)
    except ValueError:
        return content
    out = []
    for c in calls if isinstance(calls, list) else []:
        args = c.get("arguments")
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except ValueError:
            parsed = args
        if isinstance(parsed, dict):
            inner = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in parsed.items())
        else:
            inner = str(parsed or "")
        out.append(f"{c.get('name')}({inner})")
    return "; ".join(out) or content
