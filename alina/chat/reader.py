"""Reading what the person types: prompt_toolkit in a terminal, plain lines otherwise.

In a terminal (prompt_toolkit): Enter sends; Alt-Enter (or Esc then Enter) starts a new line;
a line ending in ``\\`` also continues on the next line; Up/Down recall earlier inputs; Ctrl-C
clears the input; Ctrl-D on an empty input ends the chat. From a pipe: one line per input, a
trailing ``\\`` continues it. :meth:`LineReader.read` raises EOFError at the end.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

__all__ = ["LineReader", "join_continued"]

PROMPT = "you> "
CONTINUATION = "...  "


def join_continued(lines: list[str]) -> str:
    """Lines whose trailing backslash continues them, joined by newlines (backslashes dropped)."""
    return "\n".join(line[:-1] if line.endswith("\\") else line for line in lines)


class LineReader:
    def __init__(self, *, interactive: bool | None = None) -> None:
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
        self._session: Any = None
        if self.interactive:
            self._session = _prompt_session()

    async def read(self) -> str:
        """The next input (may span lines). EOFError: Ctrl-D / end of input. KeyboardInterrupt:
        Ctrl-C at the prompt (the caller clears and asks again)."""
        if self._session is not None:
            from prompt_toolkit.formatted_text import HTML

            # handle_sigint=False: the chat's own SIGINT handler (cancel the turn) stays in place;
            # at the prompt the terminal is in raw mode and Ctrl-C arrives as a key anyway
            text: str = await self._session.prompt_async(HTML("<b>you&gt;</b> "), handle_sigint=False)
            return join_continued(text.split("\n"))
        lines: list[str] = []
        while True:
            if not lines:
                sys.stdout.write(PROMPT)
                sys.stdout.flush()
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                if lines:
                    return join_continued(lines)
                raise EOFError
            line = line.rstrip("\n")
            lines.append(line)
            if not line.endswith("\\"):
                return join_continued(lines)


def _prompt_session() -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()

    @kb.add("enter")
    def _send(event: Any) -> None:
        buf = event.current_buffer
        if buf.document.text_before_cursor.endswith("\\") and buf.document.is_cursor_at_the_end:
            buf.insert_text("\n")  # continued line: keep the backslash, joined on send
        else:
            buf.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return PromptSession(
        multiline=True,
        key_bindings=kb,
        history=InMemoryHistory(),
        prompt_continuation=lambda width, _n, _soft: "." * (width - 1) + " ",
        enable_open_in_editor=False,
    )
