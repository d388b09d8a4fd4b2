"""The chat screen: word wrapping of streamed text, the replaced-answer notice, input joining,
the `--resume` argument and when progress is drawn."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from alina.chat import optional_resume
from alina.chat.reader import join_continued
from alina.chat.view import LABEL_WIDTH, ChatView, WordWrapper
from alina.progress import shows_progress
from alina.team import RunEvent

TEXT = (
    "The BTC/USDT price is 97123.45 according to the trader's report; the trend over the last "
    "day is up by 2.1 percent with moderate volatility, and the monitor reports healthy latency."
)


def _wrapped(pieces: list[str], width: int = 80, indent: int = LABEL_WIDTH) -> list[str]:
    out: list[str] = []
    w = WordWrapper(out.append, width, indent)
    for p in pieces:
        w.feed(p)
    w.finish()
    return ("x" * indent + "".join(out)).splitlines()


def test_streamed_text_wraps_at_words_within_the_width_whatever_the_pieces() -> None:
    words = TEXT.split()
    for pieces in ([TEXT], list(TEXT), [TEXT[i : i + 3] for i in range(0, len(TEXT), 3)]):
        lines = _wrapped(pieces)
        assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
        body = [line[LABEL_WIDTH:] for line in lines]
        assert all(line.startswith(" " * LABEL_WIDTH) for line in lines[1:])  # hanging indent
        assert " ".join(body).split() == words  # no word split across lines, none lost


def test_a_word_longer_than_a_line_is_the_only_thing_folded() -> None:
    lines = _wrapped(["short " + "x" * 150 + " end"], width=60)
    assert all(len(line) <= 60 for line in lines)
    assert "".join(line[LABEL_WIDTH:].strip() for line in lines) == "short" + "x" * 150 + "end"


def test_newlines_in_the_stream_start_indented_lines() -> None:
    lines = _wrapped(["one\ntwo"])
    assert lines[0].endswith("one") and lines[1] == " " * LABEL_WIDTH + "two"


def _view(width: int = 80) -> tuple[ChatView, io.StringIO]:
    buf = io.StringIO()
    return ChatView(Console(file=buf, width=width, force_terminal=False, color_system=None)), buf


def _event(source: str, content: str, type_: str = "TextMessage") -> RunEvent:
    return RunEvent(seq=1, source=source, type=type_, content=content)


def test_a_streamed_answer_that_the_final_message_confirms_is_printed_once() -> None:
    view, buf = _view()
    for piece in ["BTC is ", "97123.45", " now."]:
        view.chunk("alina", piece)
    view.event(_event("alina", "BTC is 97123.45 now."))
    assert buf.getvalue().count("97123.45") == 1 and "replaces" not in buf.getvalue()


def test_secrets_in_streamed_text_are_masked_before_they_reach_the_screen() -> None:
    view, buf = _view()
    key = "sk-proj-" + "A1b2C3d4" * 4
    text = f"Use {key} and password: hunter2secret here"
    for i in range(0, len(text), 3):
        view.chunk("alina", text[i : i + 3])
    view.event(_event("alina", "done"))
    out = buf.getvalue()
    assert key[:12] not in out and "hunter2secret" not in out and "password:" in out


def test_a_checked_answer_that_differs_from_the_stream_is_shown_as_replacing_it() -> None:
    view, buf = _view()
    for piece in ["BTC is ", "12.0", " now."]:
        view.chunk("alina", piece)
    view.event(_event("alina", "BTC/USDT last price 97123.45 (trader)."))
    out = buf.getvalue()
    assert out.index("12.0") < out.index("checked answer replaces the streamed text") < out.index("97123.45")


def test_tool_calls_are_one_short_line_and_results_are_cut_to_the_width() -> None:
    view, buf = _view(60)
    view.event(
        _event(
            "trader",
            '[{"name": "get_price", "arguments": "{\\"symbol\\": \\"BTC/USDT\\"}"}]',
            "ToolCallRequestEvent",
        )
    )
    view.event(_event("trader", "get_price: " + "x " * 200, "ToolCallExecutionEvent"))
    lines = buf.getvalue().splitlines()
    assert "get_price(symbol='BTC/USDT')" in lines[0]
    assert len(lines) == 2 and all(len(line) <= 60 for line in lines)


def test_continued_lines_are_joined_without_their_backslashes() -> None:
    assert join_continued(["first \\", "second"]) == "first \nsecond"
    assert join_continued(["one line"]) == "one line"


def test_resume_without_an_id_means_the_latest_session() -> None:
    assert optional_resume(["chat", "--resume"]) == ["chat", "--resume", "last"]
    assert optional_resume(["chat", "--resume", "--config", "c.yaml"])[2] == "last"
    assert optional_resume(["chat", "--resume", "abc123"]) == ["chat", "--resume", "abc123"]
    assert optional_resume(["run", "--resume"]) == ["run", "--resume"]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_is_drawn_only_for_a_person_at_a_terminal() -> None:
    tty, pipe = _Stream(True), _Stream(False)
    assert shows_progress(stdout=tty, stderr=tty)
    assert not shows_progress(quiet=True, stdout=tty, stderr=tty)  # --json
    assert not shows_progress(stdout=pipe, stderr=tty)  # output piped
    assert not shows_progress(stdout=tty, stderr=pipe)


def _on_terminal(args: list[str]) -> str:
    """Everything ``args`` writes to stdout and stderr when both are a terminal (a pty)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "TERM": "xterm"}
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


SPIN = "from alina.progress import step; import time\nwith step('crunching numbers'):\n    time.sleep(1.0)\n"


def _run_step(tty: bool) -> str:
    if tty:
        return _on_terminal([sys.executable, "-c", SPIN])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    p = subprocess.run([sys.executable, "-c", SPIN], capture_output=True, text=True, env=env, timeout=60)
    return p.stdout + p.stderr


def test_a_step_draws_a_spinner_on_a_terminal_and_nothing_into_a_pipe() -> None:
    assert "crunching numbers" in _run_step(True)
    assert _run_step(False) == ""


def test_the_backtest_shows_progress_at_a_terminal_but_not_with_json() -> None:
    backtest = [sys.executable, "-m", "alina", "backtest", "--strategy", "sma_cross"]
    assert "backtesting" in _on_terminal(backtest)
    out = _on_terminal([*backtest, "--json"])
    assert "backtesting" not in out and out.lstrip().startswith("{")


def test_the_commands_that_take_seconds_show_their_progress_through_step() -> None:
    import inspect

    from alina import cli
    from alina.runtime import backtest_cli

    for command in (
        cli.up,
        cli.db_migrate,
        cli._run_task,
        cli.memory_add,
        cli.memory_search,
        cli.memory_prune,
        backtest_cli.backtest,
    ):
        source = inspect.getsource(command)
        assert "with step(" in source, command.__name__
        assert "as_json" not in inspect.signature(command).parameters or "quiet=as_json" in source
    from alina.chat import app

    assert 'with step("loading the models' in inspect.getsource(app.run_chat)
