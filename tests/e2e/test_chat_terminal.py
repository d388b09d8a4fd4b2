"""`alina chat` in a real terminal (tmux, 80 columns) on the embedded model: a task answered
on screen, slash commands, a multi-line task cancelled with Ctrl-C while the chat goes on,
/quit with exit 0, and the session resumed (`--resume`, the latest by default) with its
history reprinted. Writes the README's screenshot, docs/img/chat.png, from the screen."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.e2e._terminal import Pane, screen_png

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "chat.png"
TASK = ("What is the BTC/USDT \\", "price?")  # typed as two lines: a trailing backslash continues
LONG_TASK = ("Summarise the BTC/USDT trend over the last day", "and the system health")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="no tmux (scripts/setup.sh installs it)"),
]


def _chat(config: Path, *args: str) -> Pane:
    env = {"ALINA_ALLOW_MODEL_REQUESTS": "1", "PYTHONPATH": str(REPO), "ALINA__MEMORY__ENABLED": "false"}
    return Pane([sys.executable, "-m", "alina", "chat", "--config", str(config), *args], env=env)


def _no_traceback(screen: str) -> None:
    assert "Traceback" not in screen and "CancelledError" not in screen, screen[-3000:]


def test_chat_in_a_terminal_streams_answers_takes_commands_cancels_a_turn_and_resumes(
    alina_config_file: Path, pg_service: Any
) -> None:
    pane = _chat(alina_config_file)
    try:
        pane.wait_for(r"ALINA ready", timeout=240)
        pane.type(TASK[0])
        pane.send("Enter")
        pane.type(TASK[1])
        pane.send("Enter")
        screen = pane.wait_for(r"completed ·", timeout=400)
        answer = [line for line in screen.splitlines() if line.startswith("alina ")]
        assert answer and re.search(r"\d", " ".join(answer)), screen[-3000:]  # ALINA's answer, on screen
        assert "get_price(" in screen  # the trader's tool call, one compact line
        assert all(len(line) <= 80 for line in screen.splitlines())

        # a task typed over two lines (Alt-Enter), cancelled with Ctrl-C while it runs
        mark = pane.mark()
        pane.type(LONG_TASK[0])
        pane.send("M-Enter")
        pane.type(LONG_TASK[1])
        pane.send("Enter")
        pane.wait_for(r"⚙", timeout=300, after=mark)  # the run is going: its first tool call
        pane.send("C-c")
        screen = pane.wait_for(r"cancelled ·", timeout=120, after=mark)
        _no_traceback(screen)
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        screen_png(pane.screen(ansi=True, history=False), SCREENSHOT)

        # the chat goes on: slash commands
        for command, expect in (
            ("/status", r"session [0-9a-f]{12}"),
            ("/agents", r"trader\s+llamacpp:"),
            ("/mode", r"mode (normal|safe)"),  # safe when the machine is loaded (health watcher)
            ("/prompts", r"alina\s+v\d+"),
            ("/help", r"/memory QUERY"),
            ("/nonsense", r"unknown command /nonsense"),
        ):
            mark = pane.mark()
            pane.type(command)
            pane.send("Enter")
            pane.wait_for(expect, timeout=60, after=mark)
        # Up recalls the last input; Ctrl-C at the prompt clears it instead of sending it
        pane.send("Up")
        pane.wait_for(r"you> /nonsense\s*$", timeout=30)
        pane.send("C-c")
        pane.type("/quit")
        pane.send("Enter")
        assert pane.exit_code() == 0
        assert pane.screen().count("unknown command /nonsense") == 1
        screen = pane.screen()
        _no_traceback(screen)
        session = re.findall(r"alina chat --resume ([0-9a-f]{12})", screen)[-1]
    finally:
        pane.close()

    with psycopg.connect(pg_service.dsn) as conn:
        runs = conn.execute(
            "SELECT r.id, r.task, r.status FROM chat_session_runs s JOIN runs r ON r.id = s.run_id "
            "WHERE s.session_id = %s ORDER BY s.seq",
            (session,),
        ).fetchall()
        tasks = [(t, s) for _, t, s in runs]
        assert tasks == [("What is the BTC/USDT \nprice?", "completed"), ("\n".join(LONG_TASK), "stopped")]
        finished = conn.execute(
            "SELECT payload FROM events WHERE run_id = %s AND kind = 'run_finished'", (runs[1][0],)
        ).fetchone()
    payload = finished[0] if isinstance(finished[0], dict) else json.loads(finished[0])
    assert payload["stop_reason"] == "cancelled with Ctrl-C"

    pane = _chat(alina_config_file, "--resume")  # no id: the latest session
    try:
        screen = pane.wait_for(r"ALINA ready", timeout=240)
        assert f"session {session}" in screen and "What is the BTC/USDT" in screen  # history reprinted
        assert re.search(r"resumed session .* \d+ messages of context", screen)
        pane.send("C-d")
        assert pane.exit_code() == 0
        _no_traceback(pane.screen())
    finally:
        pane.close()


def test_resuming_an_unknown_session_is_a_clear_error_and_list_shows_the_sessions(
    alina_config_file: Path,
) -> None:
    import subprocess

    p = subprocess.run(
        [sys.executable, "-m", "alina", "chat", "-c", str(alina_config_file), "--resume", "ffffffffffff"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 2 and "no chat session 'ffffffffffff'" in p.stderr
    p = subprocess.run(
        [sys.executable, "-m", "alina", "chat", "-c", str(alina_config_file), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert p.returncode == 0 and "chat sessions (newest first)" in p.stdout, p.stderr
