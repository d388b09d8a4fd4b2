"""The chat's slash commands on a real TeamRunner (scripted models, Chroma with a stand-in
embedder; the sessions store is stubbed: tests/infra/test_chat_sessions.py covers it)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autogen_ext.models.replay import ReplayChatCompletionClient
from rich.console import Console

from alina.chat.app import ChatSession
from alina.chat.commands import COMMANDS, dispatch
from alina.chat.sessions import ChatSession as StoredSession
from alina.chat.view import ChatView
from alina.config import AlinaConfig
from alina.memory_store.vector import VectorConfig, VectorMemory
from alina.models import ResilientClient
from alina.team import MemorySink, TeamRunner
from tests.scripted import INFO, call, replay
from tests.unit.test_run_memory import FakeEmbedder


class _Sessions:
    def __init__(self) -> None:
        self.resets: list[str] = []

    async def reset(self, session: StoredSession) -> None:
        self.resets.append(session.id)


def _chat(tmp_path: Path, memory: VectorMemory | None = None) -> tuple[ChatSession, io.StringIO]:
    clients = {
        "trader": ResilientClient("trader", replay(call("get_price", '{"symbol": "BTC/USDT"}')), retries=0),
        "monitor": ResilientClient("monitor", replay("ok"), retries=0),
        "optimizer": ResilientClient("optimizer", replay("ok"), retries=0),
        "alina": ResilientClient("alina", replay("BTC/USDT is at the trader's last price."), retries=0),
        "selector": ResilientClient("selector", replay(), retries=0),
    }
    cfg = AlinaConfig.model_validate({"team": {"check_answers": False}})
    runner = TeamRunner(cfg, sink=MemorySink(), clients=clients, memory=memory)
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None)
    now = datetime.now(UTC)
    stored = StoredSession("abc123def456", "", now, now, runs=[(1, "r1")])
    return ChatSession(cfg, runner, _Sessions(), stored, console, ChatView(console)), buf  # type: ignore[arg-type]


async def _say(chat: ChatSession, buf: io.StringIO, line: str) -> tuple[bool, str]:
    start = len(buf.getvalue())
    go_on = await dispatch(chat, line)
    return go_on, buf.getvalue()[start:]


async def test_help_lists_every_command_and_the_keys(tmp_path: Path) -> None:
    chat, buf = _chat(tmp_path)
    _, out = await _say(chat, buf, "/help")
    for name in ("help", "agents", "memory", "mode", "prompts", "status", "reset", "quit"):
        assert f"/{name}" in out and name in COMMANDS
    assert "Ctrl-C" in out and "Alt-Enter" in out


async def test_agents_prompts_status_and_mode(tmp_path: Path) -> None:
    chat, buf = _chat(tmp_path)
    _, out = await _say(chat, buf, "/agents")
    assert all(a in out for a in ("alina", "trader", "monitor", "optimizer")) and "get_price" in out
    _, out = await _say(chat, buf, "/prompts")
    assert "trader" in out and re.search(r"alina\s+v\d+\s+[0-9a-f]{8}", out)
    _, out = await _say(chat, buf, "/status")
    assert "session abc123def456" in out and "alina chat --resume abc123def456" in out
    _, out = await _say(chat, buf, "/mode")
    assert "mode normal" in out
    _, out = await _say(chat, buf, "/mode safe")
    assert "mode safe" in out and chat.runner.modes.current == "safe"
    _, out = await _say(chat, buf, "/mode sideways")
    assert "usage: /mode" in out


async def test_memory_searches_the_teams_memory(tmp_path: Path) -> None:
    memory = VectorMemory(VectorConfig(path=str(tmp_path / "chroma")), embedder=FakeEmbedder())
    await memory.remember("BTC/USDT moves most during the US session", kind="lesson")
    chat, buf = _chat(tmp_path, memory)
    _, out = await _say(chat, buf, "/memory BTC/USDT US session")
    assert "BTC/USDT moves most during the US session" in out and "[lesson]" in out
    _, out = await _say(chat, buf, "/memory")
    assert "usage: /memory QUERY" in out
    await memory.close()


async def test_memory_off_is_said_plainly(tmp_path: Path) -> None:
    chat, buf = _chat(tmp_path)
    _, out = await _say(chat, buf, "/memory BTC")
    assert "memory is off" in out


async def test_reset_forgets_the_conversation(tmp_path: Path) -> None:
    chat, buf = _chat(tmp_path)
    result = await chat.runner.run("What is the BTC/USDT price?")
    assert result.status == "completed", result.error
    assert chat.runner._earlier  # the next task would see this conversation
    go_on, out = await _say(chat, buf, "/reset")
    assert go_on and "context cleared" in out
    assert chat.runner._earlier == [] and chat.sessions.resets == ["abc123def456"]  # type: ignore[attr-defined]
    state: Any = await chat.runner.team.team.save_state()
    threads = [s.get("message_thread") for s in state["agent_states"].values() if "message_thread" in s]
    assert threads and all(t == [] for t in threads)


async def test_quit_exit_and_unknown_commands(tmp_path: Path) -> None:
    chat, buf = _chat(tmp_path)
    assert (await _say(chat, buf, "/quit"))[0] is False
    assert (await _say(chat, buf, "/exit"))[0] is False
    go_on, out = await _say(chat, buf, "/frobnicate now")
    assert go_on and "unknown command /frobnicate" in out


class _SlowFirst(ReplayChatCompletionClient):
    """Answers like a replay client, but its first call hangs until it is cancelled through its
    cancellation token (as every provider client here honours it: JsonToolClient links it)."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(answers, model_info=INFO)  # type: ignore[arg-type]
        self.started = asyncio.Event()
        self.calls = 0

    async def create(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls += 1
        if self.calls == 1:
            self.started.set()
            hang = asyncio.ensure_future(asyncio.sleep(3600))
            kwargs["cancellation_token"].link_future(hang)
            await hang
        return await super().create(*args, **kwargs)


async def test_cancel_stops_the_turn_records_the_run_and_the_next_task_runs(tmp_path: Path) -> None:
    chat, _ = _chat(tmp_path)
    slow = _SlowFirst(["BTC/USDT is at the trader's last price."])
    chat.runner.team.clients["alina"].primary = slow  # type: ignore[attr-defined]
    price = call("get_price", '{"symbol": "BTC/USDT"}')
    chat.runner.team.clients["trader"].primary = replay(price, price)  # type: ignore[attr-defined]
    sink = chat.runner.sink
    running = asyncio.create_task(chat.runner.run("What is the BTC/USDT price?"))
    await asyncio.wait_for(slow.started.wait(), 60)
    assert chat.runner.cancel("cancelled with Ctrl-C")
    first = await asyncio.wait_for(running, 60)
    assert (first.status, first.stop_reason) == ("stopped", "cancelled with Ctrl-C")
    assert sink.runs[first.run_id]["status"] == "stopped"  # type: ignore[union-attr]
    assert not chat.runner.cancel()  # nothing running now

    second = await chat.runner.run("What is the BTC/USDT price?")
    assert second.status == "completed", second.error
