"""Agents take a promoted or rolled-back prompt at the start of the next run, without a restart;
the response cache never serves the old version's entries."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from autogen_core.models import CreateResult

from alina.config import AlinaConfig
from alina.meta_prompts import Prompt, compose, load_prompt
from alina.models import ResilientClient
from alina.models._cache import ResponseCache
from alina.team import MemorySink, TeamRunner
from tests.scripted import call
from tests.unit.test_resume import NAMES, TASK, Scripted

ANSWER = "BTC/USDT fell over the last day; the system is healthy."


class DictCache(ResponseCache):
    """The real cache keys, stored in a dict (no Redis)."""

    def __init__(self) -> None:
        self.namespace = "t"
        self.entries: dict[str, CreateResult] = {}

    async def get(self, key: str) -> CreateResult | None:
        return self.entries.get(key)

    async def set(self, key: str, result: CreateResult) -> None:
        self.entries[key] = result


def two_run_clients(monitor: Scripted, cache: DictCache) -> dict[str, Any]:
    scripts: dict[str, list[Any]] = {
        "trader": [call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')] * 2,
        "alina": [ANSWER, ANSWER],
    }
    made: dict[str, Any] = {n: Scripted(scripts.get(n, [])) for n in NAMES}
    made["monitor"] = monitor
    file = load_prompt("monitor")
    out = {n: ResilientClient(n, c, retries=0) for n, c in made.items()}
    out["monitor"] = ResilientClient(
        "monitor", monitor, retries=0, cache=cache, prompt_version=f"v{file.version}-{file.digest}"
    )
    return out


def rewritten_monitor() -> Prompt:
    file = load_prompt("monitor")
    body = file.body + " Name the CPU load first."
    return dataclasses.replace(file, version=file.version + 1, system=compose(body, file.protected))


async def test_the_next_run_uses_the_promoted_prompt_keeps_the_conversation_and_misses_the_cache() -> None:
    monitor = Scripted([call("system_health"), call("system_health")])
    monitor.temperature = 0  # type: ignore[attr-defined]  # deterministic: its calls are cached
    cache = DictCache()
    wanted: dict[str, Prompt] = {}

    async def source() -> dict[str, Prompt]:
        return dict(wanted)

    sink = MemorySink()
    runner = TeamRunner(
        AlinaConfig(), sink=sink, clients=two_run_clients(monitor, cache), prompt_source=source
    )
    first = await runner.run(TASK)
    assert first.status == "completed", first.error
    team = runner.team
    assert await runner.refresh_prompts() == {}  # nothing changed: the team is not rebuilt
    assert runner.team is team

    new = rewritten_monitor()
    wanted["monitor"] = new  # e.g. `alina prompts rollback` or a promotion in another process
    second = await runner.run(TASK)
    assert second.status == "completed", second.error
    assert runner.team is not team and runner.team.prompts["monitor"] == new
    assert len(monitor.seen) == 2  # the second call reached the model: no old entry was served
    assert monitor.seen[1][0].content == new.system
    assert monitor.seen[0][0].content == load_prompt("monitor").system
    assert len(monitor.seen[1]) > len(monitor.seen[0])  # the conversation of the first run is kept
    client = runner.team.clients["monitor"]
    assert isinstance(client, ResilientClient) and client.prompt_version == f"v{new.version}-{new.digest}"
    file = load_prompt("monitor")
    namespaces = sorted(k.split(":")[2] for k in cache.entries)
    assert namespaces == sorted([f"v{file.version}-{file.digest}", f"v{new.version}-{new.digest}"])
    recorded = {
        p.version
        for c in sink.commits
        if c.run_id == second.run_id
        for p in c.prompts
        if p.agent == "monitor"
    }
    assert recorded == {new.version}  # the checkpoints record the version the turns ran with


async def test_a_prompt_source_that_fails_leaves_the_prompts_and_the_run_alone(caplog) -> None:
    async def broken() -> dict[str, Prompt]:
        raise RuntimeError("postgres is away")

    clients = two_run_clients(Scripted([call("system_health")]), DictCache())
    runner = TeamRunner(AlinaConfig(), clients=clients, prompt_source=broken)
    team = runner.team
    with caplog.at_level(logging.WARNING):
        result = await runner.run(TASK)
    assert result.status == "completed", result.error
    assert runner.team is team
    assert "prompt versions unavailable (postgres is away)" in caplog.text


@pytest.mark.parametrize("agent", ["alina"])
async def test_a_new_alina_prompt_moves_the_selector_cache_namespace_too(agent: str) -> None:
    file = load_prompt(agent)
    new = dataclasses.replace(
        file, version=file.version + 1, system=compose(file.body + " Be brief.", file.protected)
    )

    async def source() -> dict[str, Prompt]:
        return {agent: new}

    clients = two_run_clients(Scripted([]), DictCache())
    runner = TeamRunner(AlinaConfig(), clients=clients, prompt_source=source)
    assert await runner.refresh_prompts() == {agent: new}
    for label in (agent, "selector"):
        assert runner.team.clients[label].prompt_version == f"v{new.version}-{new.digest}"  # type: ignore[attr-defined]


def test_alina_run_and_chat_build_their_runner_with_the_active_prompts_as_source() -> None:
    import inspect

    from alina import cli
    from alina.api import Alina

    source = inspect.getsource(Alina.runner)  # the application's team: `alina run` and `alina chat` use it
    assert "prompt_source=PromptVersions.from_config(cfg).active_prompts" in source
    assert "Alina(cfg" in inspect.getsource(cli._run_task) and "app.run(" in inspect.getsource(cli._run_task)
    assert "Alina(cfg" in inspect.getsource(cli._team_session)
    from alina import chat

    assert "session_factory=cli._team_session" in inspect.getsource(chat.chat_command)
