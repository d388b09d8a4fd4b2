"""RAG wiring and what a run leaves in memory, without Chroma, Postgres or a real model.

* the ``memory:`` config section; which agents retrieve, with a RetrievalContext;
* retrieval fails open (broken embedder, slow retrieval): the model call goes on without
  memory, logged once, ``alina_memory_available`` 0;
* the run-finish hook: called with the result, off the critical path, failures contained;
* the memories and graph facts derived from a run's events (scripted team runs);
* one MiniLM instance per process, shared by the router and the vector memory (fake loader).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import UserMessage
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.agents import AgentMemory, RetrievalContext
from alina.config import AlinaConfig, ConfigError, MemoryConfig, load_config
from alina.memory_store.vector import SHARED, VectorConfig, VectorMemory
from alina.models import ResilientClient
from alina.monitoring.metrics import REGISTRY
from alina.team import MemorySink, RunResult, TeamRunner, build_team, run_facts, run_memories
from alina.team._memory import RunMemoryWriter, tool_uses
from tests.scripted import INFO, call, degraded_health

TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"
NAMES = ("alina", "trader", "monitor", "optimizer", "selector")


def clients(**scripts: list[Any]) -> dict[str, Any]:
    made = {n: ReplayChatCompletionClient(scripts.get(n, []), model_info=INFO) for n in NAMES}  # type: ignore[arg-type]
    return {n: ResilientClient(n, c, retries=0) for n, c in made.items()}  # type: ignore[arg-type]


def trend_and_health() -> dict[str, Any]:
    return clients(
        trader=[call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
        monitor=[call("system_health")],
        alina=["BTC/USDT fell 4.25% over the last day (downtrend); the system is healthy."],
    )


class FakeEmbedder:
    """Deterministic, never loads anything; ``fail`` raises, ``delay_s`` sleeps first."""

    name = "fake-8"

    def __init__(self, fail: Exception | None = None, delay_s: float = 0.0) -> None:
        self.fail, self.delay_s, self.calls = fail, delay_s, 0

    async def embed(self, texts: Sequence[str]) -> Any:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


# -- config ----------------------------------------------------------------------------------------
def test_memory_section_defaults_reuse_the_vector_config(tmp_path: Path) -> None:
    m = AlinaConfig().memory
    assert isinstance(m, MemoryConfig) and isinstance(m, VectorConfig)  # one set of store fields
    assert (m.enabled, m.agents, m.write, m.graph) == (True, None, True, True)
    assert (m.top_k, m.min_score, m.collection, m.embedding.provider) == (5, 0.25, "alina_memory", "minilm")
    p = tmp_path / "c.yaml"
    p.write_text("memory:\n  agents: [trader, nobody]\n  top_k: 0\n  colection: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, environ={})
    text = "\n".join(err.value.problems)
    assert "memory.top_k" in text and "memory.colection: unknown field" in text
    p.write_text("memory:\n  agents: [trader, nobody]\n")
    with pytest.raises(ConfigError, match=r"memory.agents.1: unknown agent.*'nobody'"):
        load_config(p, environ={})
    cfg = load_config(p, environ={"ALINA__MEMORY__AGENTS": "[alina]", "ALINA__MEMORY__MIN_SCORE": "0.4"})
    assert cfg.memory.agents == ["alina"] and cfg.memory.min_score == 0.4
    p.write_text("memory:\n  retrieve_kinds: {alina: [lesson, lessons], boss: [note]}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, environ={})
    assert err.value.problems == [
        "memory.retrieve_kinds.alina.1: unknown kind; known: "
        "['outcome', 'decision', 'lesson', 'alert', 'note'] (got 'lessons')",
        "memory.retrieve_kinds.boss: unknown agent; known: ['alina', 'trader', 'monitor', 'optimizer'] "
        "(got 'boss')",
    ]
    cfg = load_config(p, environ={"ALINA__MEMORY__RETRIEVE_KINDS": "{alina: [lesson, alert]}"})
    assert cfg.memory.retrieve_kinds == {"alina": ["lesson", "alert"]}


# -- wiring ----------------------------------------------------------------------------------------
def _memory(tmp_path: Path, **kw: Any) -> VectorMemory:
    return VectorMemory(VectorConfig(path=str(tmp_path / "chroma"), **kw), embedder=FakeEmbedder())


def test_every_agent_retrieves_through_its_own_view_with_a_retrieval_context(tmp_path: Path) -> None:
    team = build_team(AlinaConfig(), clients=clients(), memory=_memory(tmp_path))
    for agent in team.team._participants:
        assert isinstance(agent._model_context, RetrievalContext), agent.name  # type: ignore[attr-defined]
        assert agent._model_context._buffer_size == AlinaConfig().team.history_window  # type: ignore[attr-defined]
        [adapter] = agent._memory  # type: ignore[attr-defined]
        view = adapter.memory
        assert view.agent == agent.name and view.default_scopes() == [agent.name, SHARED]
        assert view.retrieve_kinds == (("lesson",) if agent.name == "alina" else None)  # config.yaml
    assert team.memory is not None


def test_memory_agents_and_enabled_choose_who_retrieves(tmp_path: Path) -> None:
    cfg = AlinaConfig()
    cfg.memory.agents = ["alina", "trader"]
    team = build_team(cfg, clients=clients(), memory=_memory(tmp_path))
    retrieving = {a.name for a in team.team._participants if a._memory}  # type: ignore[attr-defined]
    assert retrieving == {"alina", "trader"}
    plain = next(a for a in team.team._participants if a.name == "monitor")
    assert type(plain._model_context) is BufferedChatCompletionContext  # type: ignore[attr-defined]
    cfg.memory.enabled = False
    team = build_team(cfg, clients=clients(), memory=_memory(tmp_path))
    assert not any(a._memory for a in team.team._participants)  # type: ignore[attr-defined]
    team = build_team(AlinaConfig(), clients=clients())  # no memory at all: as before
    assert not any(a._memory for a in team.team._participants)  # type: ignore[attr-defined]


# -- fail-open retrieval ---------------------------------------------------------------------------
async def test_a_broken_embedder_disables_retrieval_once_and_the_call_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = FakeEmbedder(fail=OSError("model files missing"))
    root = VectorMemory(VectorConfig(path=str(tmp_path / "c")), embedder=broken)
    trader, alina = root.for_agent("trader"), root.for_agent("alina")
    ctx = RetrievalContext(buffer_size=4)
    ctx.set_retrieved(f"alina_memory:{trader.scope}", "- [note] stale block from an earlier call")
    await ctx.add_message(UserMessage(content="BTC trend?", source="user"))
    errors = metric("alina_memory_retrievals_total", outcome="error")
    disabled = metric("alina_memory_retrievals_total", outcome="disabled")
    with caplog.at_level(logging.WARNING, logger="alina.memory_store.vector"):
        for view in (trader, alina, trader):
            result = await AgentMemory(view).update_context(ctx)
            assert result.memories.results == []
            assert ctx.retrieved_message is None  # no stale block left behind
    assert broken.calls == 1  # disabled for every view after the first failure
    assert root.retrieval_disabled is not None and "model files missing" in root.retrieval_disabled
    warnings = [r for r in caplog.records if "memory retrieval disabled" in r.getMessage()]
    assert len(warnings) == 1
    assert metric("alina_memory_retrievals_total", outcome="error") == errors + 1
    assert metric("alina_memory_retrievals_total", outcome="disabled") == disabled + 2
    assert metric("alina_memory_available") == 0


async def test_a_slow_retrieval_is_skipped_and_three_in_a_row_disable_it(tmp_path: Path) -> None:
    slow = FakeEmbedder(delay_s=1.0)
    view = VectorMemory(
        VectorConfig(path=str(tmp_path / "c"), retrieval_timeout_s=0.02), embedder=slow
    ).for_agent("trader")
    ctx = RetrievalContext(buffer_size=4)
    await ctx.add_message(UserMessage(content="BTC trend?", source="user"))
    for n in range(2):
        assert (await AgentMemory(view).update_context(ctx)).memories.results == []
        assert view.retrieval_disabled is None, n  # skipped, not disabled yet
    await AgentMemory(view).update_context(ctx)
    assert view.retrieval_disabled is not None and "3 retrievals in a row" in view.retrieval_disabled
    await AgentMemory(view).update_context(ctx)
    assert slow.calls == 3


async def test_a_team_whose_memory_is_broken_still_completes_its_run(tmp_path: Path) -> None:
    root = VectorMemory(VectorConfig(path=str(tmp_path / "c")), embedder=FakeEmbedder(fail=OSError("gone")))
    runner = TeamRunner(AlinaConfig(), clients=trend_and_health(), memory=root)
    r = await runner.run(TASK)
    assert r.status == "completed", r.error
    assert not [e for e in r.events if e.type == "MemoryQueryEvent"]
    assert root.retrieval_disabled is not None


# -- the run-finish hook ---------------------------------------------------------------------------
async def test_the_writer_gets_each_finished_run_after_it_returned_and_failures_stay_contained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[RunResult] = []
    release = asyncio.Event()

    async def writer(result: RunResult) -> None:
        await release.wait()  # a slow write: the run must not wait for it
        seen.append(result)
        raise RuntimeError("vector store exploded")

    sink = MemorySink()
    runner = TeamRunner(AlinaConfig(), sink=sink, clients=trend_and_health(), memory_writer=writer)
    r = await asyncio.wait_for(runner.run(TASK), 30)
    assert r.status == "completed" and seen == []  # returned before the write finished
    assert sink.runs[r.run_id]["status"] == "completed"
    release.set()
    with caplog.at_level(logging.WARNING, logger="alina.team._run"):
        await runner.flush_memory()
    assert seen == [r]
    assert any("memory not written: vector store exploded" in rec.getMessage() for rec in caplog.records)
    await runner.close()


async def test_close_waits_for_pending_writes() -> None:
    done: list[str] = []

    async def writer(result: RunResult) -> None:
        await asyncio.sleep(0.05)
        done.append(result.run_id)

    runner = TeamRunner(AlinaConfig(), clients=trend_and_health(), memory_writer=writer)
    r = await runner.run(TASK)
    await runner.close()
    assert done == [r.run_id]


# -- what a run leaves: memories and facts ---------------------------------------------------------
async def _trend_run() -> RunResult:
    r = await TeamRunner(AlinaConfig(), clients=trend_and_health()).run(TASK, run_id="run1")
    assert r.status == "completed", r.error
    return r


async def test_memories_of_a_run_outcome_shared_and_reports_in_each_specialists_scope() -> None:
    r = await _trend_run()
    items = run_memories(r)
    by_id = {i.id: i for i in items}
    outcome = by_id["run1-outcome"]
    answer = next(e for e in r.events if e.source == "alina" and e.type == "TextMessage")
    assert (outcome.kind, outcome.scope, outcome.run_id, outcome.message_seq) == (
        "outcome",
        SHARED,
        "run1",
        answer.seq,
    )
    assert outcome.text.startswith(f"Task: {TASK} | Outcome (completed): BTC/USDT fell 4.25%")
    reports = [e for e in r.events if e.type == "ToolCallSummaryMessage"]
    assert [(i.scope, i.kind, i.message_seq) for i in items if i.kind != "outcome"] == [
        (e.source, "note", e.seq) for e in reports
    ]
    trader = by_id[f"run1-{reports[0].seq}"]
    assert "21,925.7" in trader.text and trader.extra == {"agent": "trader", "tools": "candle_summary"}
    assert all(len(i.text) <= 600 for i in items)


async def test_graph_facts_of_a_run_carry_run_and_message_provenance() -> None:
    r = await _trend_run()
    seq = {(e.source, e.type): e.seq for e in r.events}
    facts = {(f.src, f.rel, f.dst): f for f in run_facts(r, models={"trader": "smollm2", "alina": "smollm2"})}
    assert all(f.run_id == "run1" for f in facts.values())
    used = facts[(("agent", "trader"), "used", ("tool", "candle_summary"))]
    assert used.message_seq == seq[("trader", "ToolCallRequestEvent")]
    assert used.fact == '{"hours": 24, "symbol": "BTC/USDT"}'
    observed = facts[(("agent", "trader"), "observed", ("asset", "BTC/USDT"))]
    assert observed.message_seq == seq[("trader", "ToolCallExecutionEvent")]
    assert observed.fact is not None and observed.fact.startswith("BTC/USDT 5m, last 24h")
    assert facts[(("agent", "monitor"), "used", ("tool", "system_health"))].fact == "{}"
    assert (("run", "run1"), "used", ("agent", "trader")) in facts
    assert facts[(("agent", "trader"), "used", ("model", "smollm2"))].message_seq is not None
    decided = facts[(("agent", "alina"), "decided", ("run", "run1"))]
    assert decided.message_seq == seq[("alina", "TextMessage")] and "4.25%" in (decided.fact or "")


@pytest.fixture
async def paper_desk() -> Any:
    from alina.skills.bindings import bind_desk
    from alina.trading.config import TradingConfig
    from alina.trading.desk import open_desk

    desk = await open_desk(TradingConfig())  # a paper desk on the packaged data, intents in memory
    with bind_desk(desk):
        yield
    await desk.close()


async def test_an_order_is_a_decision_in_memory_and_in_the_graph(paper_desk: Any) -> None:
    args = '{"symbol": "BTC/USDT", "side": "buy", "amount": 0.001, "api_key": "sk-secret"}'
    runner = TeamRunner(
        AlinaConfig(),
        clients=clients(
            trader=[call("place_order", args)],
            alina=["Bought 0.001 BTC/USDT."],
        ),
    )
    r = await runner.run("Buy 0.001 BTC/USDT at market", run_id="run2")
    assert r.status == "completed", r.error
    [decided] = [f for f in run_facts(r) if f.rel == "decided" and f.dst == ("asset", "BTC/USDT")]
    assert decided.fact is not None and decided.fact.startswith("order buy 0.001")
    assert "placed buy market 0.001 BTC/USDT: filled 0.001" in decided.fact  # the paper desk filled it
    [used] = [f for f in run_facts(r) if f.dst == ("tool", "place_order")]
    assert "sk-secret" not in (used.fact or "") and '"api_key": "***"' in (used.fact or "")
    assert [i.kind for i in run_memories(r) if i.scope == "trader"] == ["decision"]


SKIPPED = "skipped the trader: the task wanted it only if healthy; the monitor's report says degraded"


async def test_a_skipped_conditional_step_records_what_caused_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The causes are read from the structured result of the health check behind the report
    (its alerts), never from the report's prose."""
    degraded_health(monkeypatch)
    runner = TeamRunner(
        AlinaConfig(),
        clients=clients(
            monitor=[call("system_health", "{}")],
            alina=["The system is degraded, so I did not look at the market."],
        ),
    )
    r = await runner.run("Check the system health, then if healthy summarise the BTC/USDT trend", run_id="r3")
    assert r.status == "completed", r.error
    assert "trader" not in {e.source for e in r.events}  # no trader turn
    [done] = [d for d in r.routing if d.skipped]
    assert [(k.agent, k.on, k.domain, k.condition) for k in done.skipped] == [
        ("trader", "monitor", "health", "healthy")
    ]
    [data] = r.tool_data.values()  # kept by the id the model gave the call
    assert data["verdict"] == "degraded" and [a["name"] for a in data["alerts"]] == [
        "memory-high",
        "latency-high",
    ]
    report = next(e.seq for e in r.events if e.source == "monitor" and e.type == "ToolCallSummaryMessage")
    facts = run_facts(r)
    caused = {f.src: f for f in facts if f.rel == "caused"}
    assert set(caused) == {("alert", "memory-high"), ("alert", "latency-high")}
    for fact in caused.values():
        assert (fact.dst, fact.run_id, fact.message_seq) == (("run", "r3"), "r3", report)
        assert fact.fact == SKIPPED
    observed = {f.dst: f.fact for f in facts if f.rel == "observed" and f.dst[0] == "alert"}
    assert observed == {
        ("alert", "memory-high"): "memory 95% > 90%",
        ("alert", "latency-high"): "trader p95 31.0s > 30s",
    }
    assert [i.kind for i in run_memories(r) if i.scope == "monitor"] == ["alert"]
    assert not [f for f in facts if f.rel == "contradicted"]  # the answer agrees: degraded


async def test_a_report_without_a_tool_result_is_its_own_cause() -> None:
    """A report in prose only (the model wrote it, no tool ran): nothing structured to read, so
    the reporting agent is the cause; its words are never parsed for alerts."""
    degraded = "degraded (memory 95% > 90%; trader p95 31.0s > 30s): cpu 3%"
    runner = TeamRunner(
        AlinaConfig(),
        clients=clients(
            monitor=[degraded], alina=["The system is degraded, so I did not look at the market."]
        ),
    )
    r = await runner.run(
        "Check the system health, then if healthy summarise the BTC/USDT trend", run_id="r3b"
    )
    assert r.status == "completed", r.error
    caused = {f.src for f in run_facts(r) if f.rel == "caused"}
    assert caused == {("agent", "monitor")}
    assert not [f for f in run_facts(r) if f.rel == "observed" and f.dst[0] == "alert"]


async def test_an_answer_against_a_specialists_report_is_recorded_as_a_contradiction() -> None:
    scripts = {
        "trader": [call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
        "monitor": ["healthy: process cpu 3.1%, memory 40%"],
    }
    unchecked = AlinaConfig.model_validate({"team": {"check_answers": False}})  # the raw answers
    agreeing = await TeamRunner(
        unchecked,
        clients=clients(
            **scripts,
            alina=["BTC/USDT is in a downtrend and the system is healthy."],
        ),
    ).run(TASK, run_id="agree")
    [report] = [e for e in agreeing.events if e.type == "ToolCallSummaryMessage" and e.source == "trader"]
    assert "downtrend" in report.content  # the packaged data's last day
    assert not [f for f in run_facts(agreeing) if f.rel == "contradicted"]

    r = await TeamRunner(
        unchecked,
        clients=clients(
            **scripts,
            alina=["BTC/USDT is bullish today; the system looks degraded."],
        ),
    ).run(TASK, run_id="wrong")
    answer = next(e.seq for e in r.events if e.source == "alina")
    trader = next(e.seq for e in r.events if e.source == "trader" and e.type == "ToolCallSummaryMessage")
    monitor = next(e.seq for e in r.events if e.source == "monitor")
    facts = {f.dst: f for f in run_facts(r) if f.rel == "contradicted"}
    provenance = {(f.src, f.run_id, f.message_seq) for f in facts.values()}
    assert provenance == {(("agent", "alina"), "wrong", answer)}
    assert facts[("agent", "trader")].fact == (
        f"the answer says uptrend; the trader's report (#{trader}) says downtrend"
    )
    assert facts[("agent", "monitor")].fact == (
        f"the answer says degraded; the monitor's report (#{monitor}) says healthy"
    )

    def counted(agent: str) -> float:
        return REGISTRY.get_sample_value("alina_answer_contradictions_total", {"agent": agent}) or 0.0

    before = {a: counted(a) for a in ("trader", "monitor")}
    await RunMemoryWriter(None, None)(agreeing)  # the metric counts even with no graph or vectors
    await RunMemoryWriter(None, None)(r)
    assert {a: counted(a) - before[a] for a in before} == {"trader": 1.0, "monitor": 1.0}

    hedged = await TeamRunner(
        AlinaConfig(),
        clients=clients(
            **scripts,
            alina=["BTC/USDT was rising early, then fell into a downtrend."],
        ),
    ).run(TASK, run_id="hedged")
    assert not [f for f in run_facts(hedged) if f.rel == "contradicted"]  # two trend states: ambiguous


def test_report_states_reads_negations_once_and_keeps_every_state_named() -> None:
    from alina.team._routing import report_states

    assert report_states("The system is NOT healthy", "health") == ["degraded"]
    assert report_states("healthy: cpu 3%", "health") == ["healthy"]
    assert report_states("unhealthy load, otherwise healthy", "health") == ["degraded", "healthy"]
    assert report_states("Sideways after a down trend", "trend") == ["downtrend", "sideways"]
    assert report_states("no words for it", "trend") == []


def test_tool_uses_pair_requests_and_results_even_for_several_calls() -> None:
    from alina.team import RunEvent

    events = [
        RunEvent(1, "user", "TextMessage", "go"),
        RunEvent(
            2,
            "trader",
            "ToolCallRequestEvent",
            '[{"name": "get_price", "arguments": "{\\"symbol\\": \\"eth/usdt\\"}", "id": "c1"},'
            ' {"name": "ticker", "arguments": "{}", "id": "c2"}]',
        ),
        RunEvent(
            3,
            "trader",
            "ToolCallExecutionEvent",
            "get_price: ETH/USDT last price 1,650.0\nline two\nticker: SOL/USDT last 22.1",
        ),
        RunEvent(
            4, "monitor", "ToolCallRequestEvent", '[{"name": "system_health", "arguments": "", "id": "c3"}]'
        ),
        RunEvent(
            5,
            "monitor",
            "ToolCallExecutionEvent",
            "system_health: degraded (memory 95% > 90%; trader p95 31.0s > 30s): cpu 3%",
        ),
        RunEvent(6, "optimizer", "ToolCallRequestEvent", '[{"name": "score_answer", "arguments": "{}"}]'),
    ]
    uses = tool_uses(events)
    assert [(u.agent, u.tool, u.call_seq, u.result_seq) for u in uses] == [
        ("trader", "get_price", 2, 3),
        ("trader", "ticker", 2, 3),
        ("monitor", "system_health", 4, 5),
        ("optimizer", "score_answer", 6, None),
    ]
    assert uses[0].result == "ETH/USDT last price 1,650.0\nline two"
    assert uses[1].result == "SOL/USDT last 22.1"
    # the structured results the tools returned, by the ids the model gave the calls
    data = {
        "c2": {"symbol": "SOL/USDT", "last": 22.1},
        "c3": {
            "verdict": "degraded",
            "alerts": [
                {"name": "memory-high", "reason": "memory 95% > 90%"},
                {"name": "latency-high", "reason": "trader p95 31.0s > 30s"},
            ],
        },
    }
    assert [u.call_id for u in uses] == ["c1", "c2", "c3", None]
    assert tool_uses(events, data)[1].data == data["c2"]
    run = RunResult("r", "t", "stopped", "cut", events=events, tool_data=data)
    facts = {(f.src[1], f.rel, f.dst) for f in run_facts(run)}
    assert ("trader", "observed", ("asset", "ETH/USDT")) in facts  # named in the arguments
    assert ("trader", "observed", ("asset", "SOL/USDT")) in facts  # defaulted: the result's data names it
    bare = {(f.src[1], f.rel, f.dst) for f in run_facts(RunResult("r", "t", "stopped", "cut", events=events))}
    assert ("trader", "observed", ("asset", "SOL/USDT")) not in bare  # prose is never parsed for pairs
    assert not {f for f in bare if f[2][0] == "alert"}  # ... nor for alerts
    assert {
        ("monitor", "observed", ("alert", "memory-high")),
        ("monitor", "observed", ("alert", "latency-high")),
    } <= facts
    assert ("optimizer", "used", ("tool", "score_answer")) in facts
    outcome = next(i for i in run_memories(run) if i.kind == "outcome")
    assert "Outcome (stopped): no answer (cut)" in outcome.text and outcome.message_seq == 6


async def test_the_writer_fails_open_per_store_and_resumed_runs_read_earlier_messages() -> None:
    class Graph:
        def __init__(self) -> None:
            self.calls: list[Any] = []

        async def record(self, relations: Any, *, attrs: Any = None) -> int:
            self.calls.append((list(relations), attrs))
            return len(relations)

    class Store:
        async def get_run(self, run_id: str) -> dict[str, Any]:
            return {
                "messages": [
                    {"seq": 1, "source": "user", "type": "TextMessage", "content": TASK},
                    {
                        "seq": 2,
                        "source": "trader",
                        "type": "ToolCallRequestEvent",
                        "content": '[{"name": "get_price", "arguments": "{}", "id": "k1"}]',
                    },
                    {
                        "seq": 3,
                        "source": "trader",
                        "type": "ToolCallExecutionEvent",
                        "content": "get_price: BTC/USDT last price 21,925.7",
                    },
                ],
                # the first attempt's structured results (tool_calls.data, by call id)
                "tool_data": {"k1": {"symbol": "BTC/USDT", "price": 21925.7}},
            }

    broken = VectorMemory(VectorConfig(path="/nonexistent/never"), embedder=FakeEmbedder(fail=OSError("x")))
    graph = Graph()
    writer = RunMemoryWriter(broken, graph, store=Store())  # type: ignore[arg-type]
    from alina.team import RunEvent

    resumed = RunResult(
        "r9", TASK, "completed", "", answer="ok", events=[RunEvent(4, "alina", "TextMessage", "ok")]
    )
    resumed.resumed_from_turn = 1
    await writer(resumed)  # the vector write fails, the graph write still happens
    assert writer.errors and writer.errors[0].startswith("vectors: OSError")
    [(relations, attrs)] = graph.calls
    assert attrs == {("run", "r9"): {"task": TASK, "status": "completed"}}
    assert {(r.rel, r.dst, r.message_seq) for r in relations} >= {
        ("observed", ("asset", "BTC/USDT"), 3),
        ("decided", ("run", "r9"), 4),
    }


# -- one MiniLM per process ------------------------------------------------------------------------
def test_the_router_and_the_vector_memory_share_one_loaded_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from alina.memory_store import embeddings
    from alina.models import allow_model_requests
    from alina.team._similarity import _SharedMiniLM

    loads: list[str] = []

    class FakeST:
        def __init__(self, path: str, **kw: Any) -> None:
            loads.append(path)

        def encode(self, texts: list[str], **kw: Any) -> Any:
            return np.ones((len(texts), 4), dtype=np.float32)

    st = types.ModuleType("sentence_transformers")
    st.SentenceTransformer = FakeST  # type: ignore[attr-defined]
    hf = types.ModuleType("transformers.utils")
    hf.logging = types.SimpleNamespace(disable_progress_bar=lambda: None)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", st)
    monkeypatch.setitem(sys.modules, "transformers.utils", hf)
    monkeypatch.setattr(embeddings, "minilm_model_path", lambda: tmp_path)
    monkeypatch.setattr(embeddings, "_MODELS", {})

    memory = VectorMemory(VectorConfig(path=str(tmp_path / "c")))  # the default embedder
    with allow_model_requests(True):
        _SharedMiniLM().embed_sync(["route me"])
    asyncio.run(memory.embedder.embed(["remember me"]))
    embeddings.SentenceTransformerEmbedder(batch_size=8).embed_sync(["another"])
    assert loads == [str(tmp_path)]
