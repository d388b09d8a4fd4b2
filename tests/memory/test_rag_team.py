"""RAG in the team, on the real Chroma (persistent, under a tmp dir) and the real MiniLM.

Scripted model clients record every prompt they receive, so the tests see exactly what a model
would read: a first run's outcome retrieved into a second run's prompts; one bounded retrieved
block per call over many turns (nothing accumulates); runs that complete while Chroma or the
embedding model is unavailable; and, on real Postgres, the graph facts a run leaves, with
provenance pointing at its stored messages, including a run that was cut and resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from autogen_core.models import CreateResult, SystemMessage
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.agents import RetrievalContext
from alina.config import AlinaConfig
from alina.memory_store import RunStore
from alina.memory_store.graph import MemoryGraph
from alina.memory_store.vector import VectorConfig, VectorMemory
from alina.models import ResilientClient
from alina.monitoring.metrics import REGISTRY
from alina.team import RunMemoryWriter, TeamRunner, open_memory
from tests.scripted import INFO, call, degraded_health

from .conftest import ChromaServer

pytestmark = pytest.mark.integration

NAMES = ("alina", "trader", "monitor", "optimizer", "selector")
HEADER = RetrievalContext.HEADER
TREND = "What is the BTC/USDT trend over the last day of data?"


def _config() -> AlinaConfig:
    """These tests are about memory: their scripted answers are placeholders (or contradict the
    reports on purpose, for the graph's contradiction facts), so ALINA's answer check is off."""
    return AlinaConfig.model_validate({"team": {"check_answers": False}})


ANSWER = "BTC/USDT fell 4.25% over the last day: a downtrend."


class Recording(ReplayChatCompletionClient):
    """Replays its script and keeps the messages of every call (what the model would read);
    ``hang`` makes the call block until cancelled (a crash point)."""

    def __init__(self, steps: list[Any], hang: asyncio.Event | None = None) -> None:
        super().__init__(steps, model_info=INFO)  # type: ignore[arg-type]
        self.seen: list[list[Any]] = []
        self.hang = hang

    async def create(self, messages: Any, *args: Any, **kwargs: Any) -> CreateResult:
        self.seen.append(list(messages))
        if self.hang is not None:
            self.hang.set()
            forever = asyncio.get_running_loop().create_future()
            token = kwargs.get("cancellation_token")
            if token is not None:
                token.link_future(forever)
            await forever
        return await super().create(messages, *args, **kwargs)


def team_clients(**scripts: list[Any] | Recording) -> tuple[dict[str, Any], dict[str, Recording]]:
    raw = {n: s if isinstance(s, Recording) else Recording(list(s)) for n, s in scripts.items()}
    raw |= {n: Recording([]) for n in NAMES if n not in raw}
    return {n: ResilientClient(n, c, retries=0) for n, c in raw.items()}, raw  # type: ignore[arg-type]


def blocks(messages: list[Any]) -> list[str]:
    return [
        str(m.content) for m in messages if isinstance(m, SystemMessage) and str(m.content).startswith(HEADER)
    ]


@pytest.fixture
async def memory(tmp_path: Path, minilm: Any) -> Any:
    """A vector memory on a persistent Chroma under tmp_path with the real (shared) MiniLM."""
    root = VectorMemory(VectorConfig(path=str(tmp_path / "chroma")))
    await root.open()
    yield root
    await root.close()


async def test_a_first_runs_outcome_is_retrieved_into_the_second_runs_prompts(memory: VectorMemory) -> None:
    writer = RunMemoryWriter(memory, None)
    c1, _ = team_clients(
        trader=[call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')], alina=[ANSWER]
    )
    first = TeamRunner(_config(), clients=c1, memory=memory, memory_writer=writer)
    r1 = await first.run(TREND)
    assert r1.status == "completed", r1.error
    await first.close()  # waits for the write
    assert writer.written == 2 and await memory.count() == 2  # the outcome + the trader's report

    lesson = "BTC/USDT trend answers quote the percentage change of the day"
    await memory.remember(lesson, kind="lesson")  # as `alina memory add ... --kind lesson` does

    # A new team (as in a new process) on the same memory, asked a paraphrase.
    c2, raw = team_clients(trader=[call("candle_summary", '{"symbol": "BTC/USDT"}')], alina=["Still down."])
    second = TeamRunner(_config(), clients=c2, memory=memory, memory_writer=writer)
    r2 = await second.run("How has the BTC/USDT price moved during the past day?")
    assert r2.status == "completed", r2.error
    [trader_call] = raw["trader"].seen
    assert trader_call[0].content == second.team.prompts["trader"].render()  # the stable prefix first
    [block] = blocks(trader_call)
    assert trader_call[-1].content == block  # retrieved memory comes last, after the history
    assert f"[outcome] Task: {TREND} | Outcome (completed): {ANSWER}" in block
    assert "[note] trader on 'What is the BTC/USDT trend" in block  # its own scope too
    [alina_call] = raw["alina"].seen
    [alina_block] = blocks(alina_call)
    # ALINA (memory.retrieve_kinds default): lessons only, never an earlier run's outcome or report
    assert alina_block == f"{HEADER}\n- [lesson] {lesson}"
    retrieved = [e for e in r2.events if e.type == "MemoryQueryEvent"]
    assert [e.source for e in retrieved] == ["trader", "alina"]
    assert "[outcome] Task:" in retrieved[0].content and "[note] trader" in retrieved[0].content
    hits = await memory.search("BTC/USDT price over the past day", scopes=["shared"])
    assert hits and hits[0].run_id in {r1.run_id, r2.run_id} and hits[0].message_seq is not None
    await second.close()


async def test_nothing_accumulates_in_the_context_over_twenty_turns(memory: VectorMemory) -> None:
    cfg = _config()
    cfg.memory.retrieve_kinds = {}  # ALINA too retrieves every kind: as much as possible to accumulate
    window, top_k = cfg.team.history_window, cfg.memory.top_k
    tasks = [
        TREND,
        "What is the BTC/USDT price now?",
        "Is the ETH/USDT market trending up?",
        "Show me the SOL/USDT candles summary",
        "What is the ETH/USDT price?",
    ] * 2
    trader_steps = [call("get_price" if "price" in t else "candle_summary") for t in tasks]
    clients, raw = team_clients(trader=trader_steps, alina=[f"Answer {i}: prices moved." for i in range(10)])
    writer = RunMemoryWriter(memory, None)
    runner = TeamRunner(cfg, clients=clients, memory=memory, memory_writer=writer)
    turns = 0
    for task in tasks:  # one conversation: each run is a follow-up of the previous ones
        r = await runner.run(task)
        assert r.status == "completed", r.error
        turns += r.turns
        await runner.flush_memory()  # so later runs have more and more to retrieve
    assert turns == 20 and await memory.count() == 20
    calls = raw["trader"].seen + raw["alina"].seen
    assert len(calls) == 20
    sizes = []
    for messages in calls:
        found = blocks(messages)
        assert len(found) <= 1 and (not found or messages[-1].content == found[0])
        if found:
            assert len(found[0].splitlines()) - 1 <= top_k
        assert len(messages) <= 1 + window + 1  # system prompt + the window + one retrieved block
        sizes.append(sum(len(str(m.content)) for m in messages))
    assert sum(bool(blocks(m)) for m in calls) >= 15  # memory was there to accumulate, and was used
    assert max(sizes) <= 1.5 * max(sizes[:6])  # bounded: late prompts are no bigger than early ones
    state = await runner.team.team.save_state()
    assert HEADER not in str(state)  # retrieved text is never part of the history or saved state
    await runner.close()


# -- fail-open ------------------------------------------------------------------------------------
def _scripted_trend() -> tuple[dict[str, Any], dict[str, Recording]]:
    return team_clients(trader=[call("candle_summary", '{"symbol": "BTC/USDT"}')], alina=[ANSWER])


def available() -> float:
    return REGISTRY.get_sample_value("alina_memory_available") or 0.0


@pytest.mark.parametrize("broken", ["chroma", "embedder"])
async def test_without_chroma_or_the_embedder_runs_complete_and_say_so_once(
    broken: str, tmp_path: Path, free_port: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _config()
    cfg.paths.data_dir = str(tmp_path)
    if broken == "chroma":  # a Chroma server that is not there
        cfg.memory.backend, cfg.memory.port = "http", free_port()
    else:  # an embedding server that is not there (Chroma itself is fine)
        cfg.memory.embedding.provider, cfg.memory.embedding.base_url = (
            "ollama",
            f"http://127.0.0.1:{free_port()}",
        )
    with caplog.at_level(logging.WARNING):
        memory = await open_memory(cfg)
        if broken == "chroma":
            assert memory is None and available() == 0
        else:
            assert memory is not None  # opens: the embedder only fails on first use
        writer = RunMemoryWriter.from_config(cfg, memory=memory, graph=None)
        for _ in range(2):
            clients, raw = _scripted_trend()
            runner = TeamRunner(cfg, clients=clients, memory=memory, memory_writer=writer)
            r = await runner.run(TREND)
            assert r.status == "completed", r.error
            assert not blocks(raw["trader"].seen[0])
            await runner.close()
    said = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]
    if broken == "chroma":
        assert sum("memory (RAG) unavailable" in m for m in said) == 1
        assert "cannot reach chroma" in next(m for m in said if "unavailable" in m)
    else:
        assert memory is not None and memory.retrieval_disabled is not None
        assert sum("memory retrieval disabled" in m for m in said) == 1
        assert available() == 0
        assert writer.errors and "ollama" in writer.errors[0]  # the write failed open too
        await memory.close()


async def test_chroma_going_away_mid_session_disables_retrieval_and_runs_go_on(
    chroma_server: ChromaServer, minilm: Any, caplog: pytest.LogCaptureFixture
) -> None:
    memory = VectorMemory(VectorConfig(backend="http", port=chroma_server.port, collection="rag_team"))
    await memory.open()
    writer = RunMemoryWriter(memory, None)
    clients, _ = _scripted_trend()
    runner = TeamRunner(_config(), clients=clients, memory=memory, memory_writer=writer)
    assert (await runner.run(TREND)).status == "completed"
    await runner.flush_memory()
    assert writer.written == 2 and not writer.errors

    chroma_server.stop()
    with caplog.at_level(logging.WARNING):
        clients, raw = _scripted_trend()
        runner = TeamRunner(_config(), clients=clients, memory=memory, memory_writer=writer)
        r = await asyncio.wait_for(runner.run(TREND), 120)
        await runner.close()
    assert r.status == "completed", r.error
    assert not blocks(raw["trader"].seen[0])
    assert memory.retrieval_disabled is not None and "cannot reach chroma" in memory.retrieval_disabled
    assert sum("memory retrieval disabled" in rec.getMessage() for rec in caplog.records) == 1
    assert writer.errors  # the write after the run failed, logged, and did not fail the run
    await memory.close()


# -- graph facts on real Postgres -----------------------------------------------------------------
@pytest.fixture
async def store(fresh_pg_dsn: str) -> Any:
    s = RunStore(fresh_pg_dsn)
    await s.open()
    yield s
    await s.close()


TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"


async def test_a_run_leaves_graph_facts_with_provenance_in_postgres(store: RunStore) -> None:
    graph = MemoryGraph(store)
    cfg = _config()
    writer = RunMemoryWriter.from_config(cfg, memory=None, graph=graph, store=store)
    clients, _ = team_clients(
        trader=[call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
        monitor=[call("system_health")],
        alina=[ANSWER],
    )
    runner = TeamRunner(cfg, sink=store, clients=clients, memory_writer=writer)
    r = await runner.run(TASK)
    assert r.status == "completed", r.error
    await runner.close()
    stored = await store.get_run(r.run_id)
    assert stored is not None
    seq = {(m["source"], m["type"]): m["seq"] for m in stored["messages"]}

    [observed] = await graph.neighbours(("asset", "BTC/USDT"))
    assert (observed.src, observed.rel, observed.run_id) == (("agent", "trader"), "observed", r.run_id)
    assert observed.message_seq == seq[("trader", "ToolCallExecutionEvent")]
    assert observed.fact is not None and observed.fact.startswith("BTC/USDT 5m, last 24h")
    used = {e.dst: e for e in await graph.neighbours(("agent", "trader"), rel="used")}
    assert used[("tool", "candle_summary")].message_seq == seq[("trader", "ToolCallRequestEvent")]
    assert used[("model", cfg.model_for("trader").model)].run_id == r.run_id
    run_edges = await graph.neighbours(("run", r.run_id))
    assert {e.dst for e in run_edges if e.rel == "used"} == {
        ("agent", a) for a in ("trader", "monitor", "alina")
    }
    [answer] = [e for e in run_edges if e.rel == "decided"]
    assert answer.message_seq == seq[("alina", "TextMessage")] and answer.fact == ANSWER
    monitor = await graph.neighbours(("agent", "monitor"), rel="used")
    assert ("tool", "system_health") in {e.dst for e in monitor}
    async with store._connection() as conn:
        cur = await conn.execute("SELECT attrs FROM entities WHERE kind = 'run' AND name = %s", (r.run_id,))
        row = await cur.fetchone()
    assert row is not None and row[0] == {"task": TASK, "status": "completed"}

    before = writer.recorded
    await writer(r)  # recording the same run again adds nothing
    assert writer.recorded == before and len(await graph.neighbours(("asset", "BTC/USDT"))) == 1


async def test_a_resumed_run_records_the_facts_of_its_earlier_attempt_too(store: RunStore) -> None:
    graph = MemoryGraph(store)
    writer = RunMemoryWriter(None, graph, store=store)
    started = asyncio.Event()
    clients, _ = team_clients(
        trader=[call("candle_summary", '{"symbol": "BTC/USDT"}')], monitor=Recording([], hang=started)
    )
    runner = TeamRunner(_config(), sink=store, clients=clients, memory_writer=writer)
    task = asyncio.create_task(runner.run(TASK, run_id="cut-run"))
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.sleep(0.3)  # the trader's turn is committed
    task.cancel()  # like SIGKILL: the run is never finished, nothing is written to memory
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await graph.neighbours(("asset", "BTC/USDT")) == []

    clients, _ = team_clients(monitor=[call("system_health")], alina=[ANSWER])
    resumed = TeamRunner(_config(), sink=store, clients=clients, memory_writer=writer)
    r = await resumed.resume("cut-run")
    assert r.status == "completed", r.error
    await resumed.close()
    assert all(e.source != "trader" for e in r.events)  # this attempt did not redo the trader
    [observed] = await graph.neighbours(("asset", "BTC/USDT"))  # ... but its fact is recorded
    stored = await store.get_run("cut-run")
    assert stored is not None
    trader_result = next(
        m["seq"]
        for m in stored["messages"]
        if m["source"] == "trader" and m["type"] == "ToolCallExecutionEvent"
    )
    assert (observed.run_id, observed.message_seq) == ("cut-run", trader_result)
    assert ("tool", "system_health") in {e.dst for e in await graph.neighbours(("agent", "monitor"))}


async def test_what_caused_a_skip_and_a_contradicted_report_are_in_the_graph(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    degraded_health(monkeypatch)  # the health check's structured result names the alerts
    graph = MemoryGraph(store)
    writer = RunMemoryWriter(None, graph, store=store)
    clients, _ = team_clients(monitor=[call("system_health")], alina=["All healthy."])
    runner = TeamRunner(_config(), sink=store, clients=clients, memory_writer=writer)
    r = await runner.run("Check the system health, then if healthy summarise the BTC/USDT trend")
    assert r.status == "completed", r.error
    await runner.close()  # waits for the memory writer
    stored = await store.get_run(r.run_id)
    assert stored is not None
    seq = {m["source"]: m["seq"] for m in stored["messages"]}
    assert "trader" not in seq

    [caused] = await graph.neighbours(("alert", "memory-high"), rel="caused")
    assert (caused.dst, caused.run_id, caused.message_seq) == (("run", r.run_id), r.run_id, seq["monitor"])
    assert caused.fact == (
        "skipped the trader: the task wanted it only if healthy; the monitor's report says degraded"
    )
    [contradicted] = await graph.neighbours(("agent", "alina"), rel="contradicted")
    assert (contradicted.dst, contradicted.message_seq) == (("agent", "monitor"), seq["alina"])
    report = seq["monitor"]
    assert contradicted.fact == f"the answer says healthy; the monitor's report (#{report}) says degraded"
