"""Team logic with scripted models (ReplayChatCompletionClient): routing, termination, accounting.

The selector's replay client starts empty, so any speaker selection that reaches the model when
the rules should have decided fails the test ("No more mock responses available").
"""

from __future__ import annotations

from typing import Any

import pytest
from autogen_core.models import CreateResult
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.config import AlinaConfig
from alina.models import ModelTimeoutError, RealModelCallBlocked, ResilientClient
from alina.models.openai_compat import OpenAICompatClient
from alina.skills.builtin import score_text
from alina.team import MemorySink, TeamRunner
from tests.scripted import INFO, call, replay

TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"


def clients(**scripts: list[Any]) -> dict[str, Any]:
    names = ("alina", "trader", "monitor", "optimizer", "selector")
    return {n: ResilientClient(n, replay(*scripts.get(n, [])), retries=0) for n in names}  # type: ignore[arg-type]


async def test_trend_and_health_task_routes_by_rules_without_selector_calls() -> None:
    sink = MemorySink()
    runner = TeamRunner(
        AlinaConfig(),
        sink=sink,
        clients=clients(
            trader=[call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
            monitor=[call("system_health")],
            alina=["BTC/USDT fell 4.25% over the last day (downtrend); the system is healthy."],
        ),
    )
    r = await runner.run(TASK)
    assert r.status == "completed", r.error
    assert [d.speaker for d in r.routing] == ["trader", "monitor", "alina"]
    assert [d.method for d in r.routing] == ["rules", "rules", "done"]
    assert (r.turns, r.tool_calls, r.model_calls) == (3, 2, 3)
    assert r.prompt_tokens > 0 and r.completion_tokens > 0
    sources = [(e.source, e.type) for e in r.events]
    assert ("trader", "ToolCallExecutionEvent") in sources and (
        "monitor",
        "ToolCallExecutionEvent",
    ) in sources
    trader_report = next(
        e.content for e in r.events if e.source == "trader" and e.type == "ToolCallSummaryMessage"
    )
    assert "downtrend" in trader_report and "21,925.7" in trader_report  # the real tool ran on real data
    assert r.answer.startswith("BTC/USDT fell")
    run = sink.runs[r.run_id]
    assert (run["task"], run["status"], run["turns"], run["model_calls"], run["tool_calls"]) == (
        TASK,
        "completed",
        3,
        3,
        2,
    )
    assert [m.seq for m in sink.messages(r.run_id)] == list(range(1, len(r.events) + 1))
    # one checkpoint per turn, each with the team state and the prompts the agents ran with
    assert [c.turn for c in sink.commits] == [1, 2, 3] and r.checkpoints == 3
    assert all(c.is_checkpoint and {p.agent for p in c.prompts} >= {"alina", "trader"} for c in sink.commits)
    out = r.to_json()
    assert set(out) >= {
        "run_id",
        "status",
        "turns",
        "model_calls",
        "tool_calls",
        "tokens",
        "wall_s",
        "messages",
    }
    assert out["messages"][0] == {"source": "user", "type": "TextMessage", "content": TASK}


async def test_explicit_mention_wins_over_keywords() -> None:
    runner = TeamRunner(
        AlinaConfig(),
        clients=clients(optimizer=[call("score_answer", '{"of": "latest"}')], alina=["Scored."]),
    )
    r = await runner.run("@optimizer score this answer about the BTC price trend: BTC rose 3%")
    assert r.status == "completed", r.error
    assert [(d.speaker, d.method) for d in r.routing] == [("optimizer", "mention"), ("alina", "done")]
    # The tool, run in the skill loader's thread inside AutoGen, saw this run's conversation.
    scored = [e.content for e in r.events if e.source == "optimizer" and e.type == "ToolCallExecutionEvent"]
    assert len(scored) == 1 and "the request's text: score " in scored[0], scored


async def test_model_picks_the_speaker_when_no_rule_applies_then_alina_concludes() -> None:
    runner = TeamRunner(
        AlinaConfig(),
        clients=clients(selector=["monitor"], monitor=[call("system_health")], alina=["All good."]),
    )
    r = await runner.run("Hello there, anything I should know?")
    assert r.status == "completed", r.error
    assert [d.method for d in r.routing] == ["model", "done"]
    assert [e.source for e in r.events if e.type == "ToolCallExecutionEvent"] == ["monitor"]
    assert r.model_calls == 3  # selector + monitor + alina


async def test_follow_up_continues_the_same_conversation() -> None:
    runner = TeamRunner(
        AlinaConfig.model_validate({"team": {"check_answers": False}}),  # placeholder answers
        clients=clients(
            trader=[call("get_price"), call("candle_summary")],
            alina=["Price given.", "Trend given."],
        ),
    )
    first = await runner.run("What is the BTC price?")
    second = await runner.run("And the trend over the last day?")
    assert first.status == second.status == "completed"
    assert [d.speaker for d in second.routing] == ["trader", "alina"]
    assert first.run_id != second.run_id


async def test_max_turns_stops_the_run() -> None:
    cfg = AlinaConfig()
    cfg.team.max_turns = 1
    runner = TeamRunner(cfg, clients=clients(trader=[call("get_price")]))
    r = await runner.run(TASK)
    assert r.status == "stopped"
    assert r.turns == 1
    assert r.stop_reason == "maximum of 1 turns reached"


class TimesOut(ReplayChatCompletionClient):
    attempts = 0

    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        TimesOut.attempts += 1
        raise ModelTimeoutError("scripted timeout")


async def test_timeouts_are_retried_then_the_run_fails_with_a_reason() -> None:
    c = clients(alina=[])
    c["trader"] = ResilientClient("trader", TimesOut([], model_info=INFO), retries=2)  # type: ignore[arg-type]
    TimesOut.attempts = 0
    r = await TeamRunner(AlinaConfig(), clients=c).run(TASK)
    assert r.status == "failed"
    assert TimesOut.attempts == 3  # the call and 2 retries
    assert "after 2 retries" in (r.error or "")


async def test_fallback_model_answers_after_retries() -> None:
    c = clients(monitor=[call("system_health")], alina=["ok"])
    c["trader"] = ResilientClient(
        "trader",
        TimesOut([], model_info=INFO),
        retries=1,
        fallback=replay(call("get_price")),  # type: ignore[arg-type]
    )
    records: list[Any] = []
    c["trader"].listener = records.append
    r = await TeamRunner(AlinaConfig(), clients=c).run(TASK)
    assert r.status == "completed", r.error
    assert [x.outcome for x in records] == ["timeout", "timeout", "fallback"]


async def test_real_model_requests_are_blocked_in_unit_tests() -> None:
    client = OpenAICompatClient(base_url="http://127.0.0.1:9/v1", model="x")
    from autogen_core.models import UserMessage

    with pytest.raises(RealModelCallBlocked):
        await client.create([UserMessage(content="hi", source="user")])


async def test_a_failing_agent_fails_the_run_once_without_autogens_echoed_tracebacks(caplog) -> None:
    """AutoGen echoes an agent's failure to every other agent, each logging a ValueError with a
    traceback; the run reports the real error once and the echoes are dropped."""
    runner = TeamRunner(AlinaConfig(), clients=clients(monitor=[call("system_health")]))  # trader: no reply
    with caplog.at_level("ERROR", logger="autogen_core"):
        r = await runner.run(TASK)
    assert r.status == "failed" and r.error, r
    assert not [rec for rec in caplog.records if "Unhandled message in agent container" in str(rec.exc_info)]


async def test_the_optimizer_scores_a_report_from_earlier_in_the_conversation() -> None:
    """A chat follow-up (like a resumed run) starts with messages the team already holds: the
    optimizer's tool reads those too, so it scores the trader's real report, not the request."""
    runner = TeamRunner(
        AlinaConfig.model_validate({"team": {"check_answers": False}}),  # placeholder answers
        clients=clients(
            trader=[call("get_price")],
            optimizer=[call("score_answer", '{"of": "trader"}')],
            alina=["Price given.", "Scored."],
        ),
    )
    first = await runner.run("What is the BTC price?")
    assert first.status == "completed", first.error
    summary, executed = ("trader", "ToolCallSummaryMessage"), ("optimizer", "ToolCallExecutionEvent")
    report = next(e.content for e in first.events if (e.source, e.type) == summary)
    follow_up = "@optimizer score the trader's report"
    second = await runner.run(follow_up)
    assert second.status == "completed", second.error
    scored = [e.content for e in second.events if (e.source, e.type) == executed]
    assert len(scored) == 1 and "trader's report: " + score_text(report, follow_up) in scored[0], scored
