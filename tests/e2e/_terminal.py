"""A real terminal for end-to-end tests: a tmux pane (send-keys, capture-pane) and a PNG of it.

Each :class:`Pane` runs on its own tmux server socket, so tests never touch a person's tmux.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from rich.color import Color
from rich.style import Style
from rich.terminal_theme import MONOKAI
from rich.text import Text

EXIT_RE = re.compile(r"EXIT=(\d+)")


class Pane:
    """A command running in a ``width`` x ``height`` tmux pane; the pane prints ``EXIT=N``
    when the command ends and stays open so the screen can still be read."""

    def __init__(self, command: list[str], *, env: dict[str, str], width: int = 80, height: int = 40) -> None:
        self.socket = f"alina-test-{uuid.uuid4().hex[:8]}"
        self.target = "t"
        script = f"{shlex.join(command)}; echo EXIT=$?; sleep 600"
        env_args = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        subprocess.run(
            [
                "tmux",
                "-L",
                self.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                self.target,
                "-x",
                str(width),
                "-y",
                str(height),
                *env_args,
                "bash",
                "-c",
                script,
            ],
            check=True,
            env={**os.environ, "TERM": "xterm-256color"},
        )

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def send(self, *keys: str) -> None:
        """Keys as tmux names them (``Enter``, ``C-c``, ``C-d``, ``M-Enter``)."""
        self._tmux("send-keys", "-t", self.target, *keys)

    def type(self, text: str) -> None:
        """Literal text (no key names), as if typed."""
        self._tmux("send-keys", "-t", self.target, "-l", text)

    def screen(self, *, ansi: bool = False, history: bool = True) -> str:
        args = ["capture-pane", "-p", "-t", self.target]
        if history:
            args += ["-S", "-2000"]
        if ansi:
            args.append("-e")
        return self._tmux(*args)

    def mark(self) -> int:
        """Where the screen's text ends now (for ``wait_for(after=...)``: only what comes next)."""
        return len(self.screen().rstrip())

    def wait_for(self, pattern: str, timeout: float = 120.0, *, after: int = 0) -> str:
        """The screen once ``pattern`` (a regex) appears after character ``after`` of it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text[after:]):
                return text
            if time.monotonic() > deadline or (pattern != r"EXIT=\d+" and EXIT_RE.search(text[after:])):
                raise AssertionError(f"{pattern!r} not on the screen after {timeout:g}s:\n{text[-4000:]}")
            time.sleep(0.2)

    def exit_code(self, timeout: float = 60.0) -> int:
        text = self.wait_for(r"EXIT=\d+", timeout)
        found = EXIT_RE.findall(text)
        return int(found[-1])

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
THEME = MONOKAI
BG, FG = tuple(THEME.background_color), tuple(THEME.foreground_color)


def _fonts(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, ...]:
    regular, bold = FONT_DIR / "DejaVuSansMono.ttf", FONT_DIR / "DejaVuSansMono-Bold.ttf"
    if regular.is_file() and bold.is_file():
        return ImageFont.truetype(str(regular), size), ImageFont.truetype(str(bold), size)
    font = ImageFont.load_default(size=size)
    return font, font


def screen_png(ansi: str, path: Path, *, cols: int = 80, title: str = "alina chat") -> Path:
    """Draw a captured pane (``capture-pane -e`` text) as a terminal window PNG."""
    size = 15
    regular, bold = _fonts(size)
    cell_w = int(round(regular.getlength("M"))) if hasattr(regular, "getlength") else 9
    cell_h = size + 5
    lines = ansi.rstrip("\n").split("\n")
    while lines and not Text.from_ansi(lines[-1]).plain.strip():
        lines.pop()
    pad, bar = 14, 28
    img = Image.new("RGB", (cols * cell_w + 2 * pad, len(lines) * cell_h + 2 * pad + bar), BG)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, img.width, bar), fill=(60, 60, 60))
    for i, colour in enumerate(((243, 139, 168), (249, 226, 175), (166, 227, 161))):
        draw.ellipse((12 + i * 20, 9, 24 + i * 20, 21), fill=colour)
    draw.text((img.width // 2, bar // 2), title, fill=FG, font=regular, anchor="mm")
    for row, line in enumerate(lines):
        text = Text.from_ansi(line)
        styles = [Style()] * len(text.plain)
        for span in text.spans:
            span_style = span.style if isinstance(span.style, Style) else Style.parse(str(span.style))
            for i in range(span.start, min(span.end, len(styles))):
                styles[i] = styles[i] + span_style
        y = bar + pad + row * cell_h
        for col, ch in enumerate(text.plain[:cols]):
            style = styles[col]
            rgb = FG
            if style.color is not None and not style.color.is_default:
                rgb = _rgb(style.color)
            if style.dim:
                rgb = tuple((c + b) // 2 for c, b in zip(rgb, BG, strict=True))  # type: ignore[assignment]
            if ch != " ":
                draw.text((pad + col * cell_w, y), ch, fill=rgb, font=bold if style.bold else regular)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)
    return path


def _rgb(color: Color) -> tuple[int, int, int]:
    t = color.get_truecolor(THEME)
    return (t.red, t.green, t.blue)
