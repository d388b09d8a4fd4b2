"""ALINA's router: every rule, the lexical scorer, name matching, the model step, persistence
hooks, metrics, and the labeled routing set (accuracy without the model).

Model turns are scripted (ReplayChatCompletionClient); the global guard fails any real model call.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from autogen_agentchat.messages import TextMessage, ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, FunctionExecutionResult
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.config import AlinaConfig
from alina.meta_prompts import PromptError, load_prompt
from alina.meta_prompts import _prompts as prompts_module
from alina.models import ModelTimeoutError, RealModelCallBlocked, ResilientClient
from alina.monitoring.metrics import REGISTRY
from alina.team import (
    LexicalScorer,
    MemorySink,
    Router,
    SnapshotError,
    TeamRunner,
    Turn,
    build_router,
    match_name,
    parse_snapshot,
)
from alina.team._routing import AgentProfile, profiles_from_prompts, stem, turns_from_messages
from tests.scripted import INFO, replay
from tests.scripted import call as _call

SET_PATH = Path(__file__).resolve().parents[2] / "alina" / "team" / "routing_set.jsonl"
NAMES = ("alina", "trader", "monitor", "optimizer")
TREND = (
    "BTC/USDT 5m, last 24h of data: open 22,898.1 close 21,925.7 (-4.25%), high 23,007.8 low 21,817.5, "
    "trend downtrend, volatility 0.15%/5m, 288 candles"
)
UPTREND = TREND.replace("downtrend", "uptrend").replace("-4.25%", "+1.46%")
HEALTHY = "healthy: process cpu 3.1%, rss 412 MB, system memory 41% used, load 0.52/0.61/0.70 (2 cpu)"
DEGRADED = "degraded (memory 93% > 90%): process cpu 87.0%, system memory 93% used, load 4.80 (2 cpu)"
SCORE = "score 0.71: non_empty=pass, length_ok=pass, on_topic=fail"


def router(mode: str = "normal", client: Any = None) -> Router:
    return build_router(AlinaConfig(), client=client, mode=mode)  # type: ignore[arg-type]


def U(text: str) -> Turn:
    return Turn("user", text)


def next_of(*turns: Turn, mode: str = "normal") -> tuple[str | None, str]:
    d = router(mode).decide(list(turns))
    return d.speaker, d.method


def val(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --------------------------------------------------------------------------- rule: tool rounds


def test_a_tool_result_returns_to_the_agent_that_called_it() -> None:
    task = U("What is the BTC/USDT trend, and is the system healthy?")
    assert next_of(task, Turn("trader", "candle_summary", "tool_call")) == ("trader", "tool")
    assert next_of(task, Turn("trader", TREND, "tool_result")) == ("trader", "tool")
    # mid-plan: the monitor's tool result goes back to the monitor, not on to the next step
    assert next_of(task, Turn("trader", TREND), Turn("monitor", HEALTHY, "tool_result")) == (
        "monitor",
        "tool",
    )


def test_autogen_tool_events_become_tool_turns() -> None:
    thread = [
        TextMessage(source="user", content="Is the system healthy?"),
        ToolCallRequestEvent(
            source="monitor", content=[FunctionCall(id="1", name="system_health", arguments="{}")]
        ),
        ToolCallExecutionEvent(
            source="monitor",
            content=[
                FunctionExecutionResult(call_id="1", name="system_health", content=HEALTHY, is_error=False)
            ],
        ),
    ]
    turns = turns_from_messages(thread)
    assert [(t.source, t.kind) for t in turns] == [
        ("user", "text"),
        ("monitor", "tool_call"),
        ("monitor", "tool_result"),
    ]
    assert router().decide(turns).speaker == "monitor"


# --------------------------------------------------------------------------- rule: @mention


@pytest.mark.parametrize(
    ("task", "first"),
    [
        ("@monitor what is the BTC price?", "monitor"),  # the mention beats the trader's keywords
        ("@Trader what's the trend?", "trader"),  # case-insensitive
        ("hey @traders, price of btc pls", "trader"),  # plural
        ("@alina what should we focus on?", "alina"),
        ("@optimizer score this answer about the BTC price trend: BTC rose 3%", "optimizer"),
    ],
)
def test_an_explicit_mention_wins(task: str, first: str) -> None:
    assert next_of(U(task)) == (first, "mention")


def test_several_mentions_speak_in_order_then_alina() -> None:
    task = U("@trader and @monitor: give me a status update")
    assert next_of(task) == ("trader", "mention")
    assert next_of(task, Turn("trader", TREND)) == ("monitor", "mention")
    assert next_of(task, Turn("trader", TREND), Turn("monitor", HEALTHY)) == ("alina", "done")


def test_unknown_mentions_are_ignored() -> None:
    assert next_of(U("@bob what is the BTC price?")) == ("trader", "rules")


# --------------------------------------------------------------------------- rule: safe mode


@pytest.mark.parametrize(
    "task",
    [
        "Buy 0.01 BTC at market",
        "Place a limit sell order for 0.5 BTC at 23,000",
        "Close my BTC position",
        "go short bitcoin with 2x leverage",
        "@trader sell all my bitcoin now",  # safe mode beats a mention
    ],
)
def test_safe_mode_never_sends_an_order_to_the_trader(task: str) -> None:
    d = router("safe").decide([U(task)])
    assert (d.speaker, d.method) == ("alina", "safe")
    assert "safe mode" in d.reason
    assert router("normal").decide([U(task)]).speaker == "trader"


def test_safe_mode_still_runs_the_read_only_parts() -> None:
    task = U("Check the system health and then buy 0.1 BTC")
    assert next_of(task, mode="safe") == ("monitor", "rules")
    assert next_of(task, Turn("monitor", HEALTHY), mode="safe") == ("alina", "safe")
    assert next_of(U("What is the BTC price?"), mode="safe") == ("trader", "rules")  # reading is fine
    assert next_of(U("Should I buy bitcoin now, given the trend?"), mode="safe") == ("trader", "rules")


def test_mode_switch_is_validated() -> None:
    r = router()
    r.set_mode("safe")
    assert r.decide([U("Buy 1 BTC")]).method == "safe"
    with pytest.raises(ValueError, match="risky"):
        r.set_mode("risky")


# --------------------------------------------------------------------------- rules: the plan


def test_specialists_speak_in_the_order_the_task_names_them_then_alina_concludes() -> None:
    task = U("What is the BTC/USDT trend over the last day of data, and is the system healthy?")
    assert next_of(task) == ("trader", "rules")
    assert next_of(task, Turn("trader", TREND)) == ("monitor", "rules")
    d = router().decide([task, Turn("trader", TREND), Turn("monitor", HEALTHY)])
    assert (d.speaker, d.method, d.reason) == ("alina", "done", "every needed specialist has answered")
    assert next_of(U("Is the system healthy, and what's the BTC price?")) == ("monitor", "rules")


def test_multi_step_with_a_condition_on_the_monitors_report() -> None:
    task = U("check health, then if healthy summarise BTC trend and score the summary")
    assert next_of(task)[0] == "monitor"
    assert next_of(task, Turn("monitor", HEALTHY))[0] == "trader"
    assert next_of(task, Turn("monitor", HEALTHY), Turn("trader", TREND))[0] == "optimizer"
    assert (
        next_of(task, Turn("monitor", HEALTHY), Turn("trader", TREND), Turn("optimizer", SCORE))[0] == "alina"
    )
    d = router().decide([task, Turn("monitor", DEGRADED)])
    assert (d.speaker, d.method) == ("alina", "done") and "condition not met" in d.reason


def test_the_agent_whose_report_decides_a_condition_goes_first() -> None:
    assert next_of(U("If the system is healthy, give me the BTC trend."))[0] == "monitor"
    task = U("Only if BTC is in an uptrend, check whether the machine has spare memory.")
    assert next_of(task)[0] == "trader"
    assert next_of(task, Turn("trader", UPTREND))[0] == "monitor"
    assert next_of(task, Turn("trader", TREND))[0] == "alina"
    unless = U("Get the bitcoin trend; unless it's a downtrend, check the load.")
    assert next_of(unless, Turn("trader", TREND))[0] == "alina"
    assert next_of(unless, Turn("trader", UPTREND))[0] == "monitor"


def test_the_optimizer_scores_after_whoever_produces_the_thing_to_score() -> None:
    assert next_of(U("Score a summary of the last day of BTC trading"))[0] == "trader"
    assert (
        next_of(U("Score a summary of the last day of BTC trading"), Turn("trader", TREND))[0] == "optimizer"
    )
    # given inline, or a prompt, or already in the conversation: the optimizer alone
    assert next_of(U("Score this answer: BTC rose 3% yesterday on strong volume."))[0] == "optimizer"
    assert next_of(U("Improve the trader's system prompt, its answers are too vague."))[0] == "optimizer"
    earlier = [U("Is the system healthy?"), Turn("monitor", HEALTHY), Turn("alina", "Healthy.")]
    assert router().decide([*earlier, U("grade the health report")]).speaker == "optimizer"


# --------------------------------------------------------------------------- rules: claims


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        # asking to change an agent (its prompt, model, settings, how it answers): the optimizer,
        # even when the request names the trader, the monitor or ALINA
        ("The trader's answers are too long, rewrite its prompt", "optimizer"),
        ("switch the monitor to a bigger model", "optimizer"),
        ("tune ALINA's settings", "optimizer"),
        ("make the trader more concise", "optimizer"),
        ("Use a larger model for the monitor.", "optimizer"),
        ("Lower the trader's temperature a little.", "optimizer"),
        ("Swap the model behind the trader for qwen2.5", "optimizer"),
        ("the monitor's replies are rambling", "optimizer"),
        ("Increase the trader's max tokens", "optimizer"),
        ("make the trader use fewer tokens", "optimizer"),
        ("tune the trader so it uses fewer tokens", "optimizer"),  # the change comes first
        # the system's own figures: the monitor, even when they name another agent or use the
        # optimizer's words ("rate")
        ("is the monitor healthy", "monitor"),
        ("how many tokens did the last run use", "monitor"),
        ("How many tokens did the trader use today?", "monitor"),
        ("What's our error rate today?", "monitor"),
        ("What is the trader's error rate this week?", "monitor"),
        ("What is the cache hit rate?", "monitor"),
        ("Is Redis up?", "monitor"),
        ("How long did the last few runs take?", "monitor"),
        ("Where did the time go in the last run?", "monitor"),
        ("Which agent was the slowest in the last run?", "monitor"),
        ("How much latency does the optimizer's model have?", "monitor"),
        ("What's the error rate since we switched the trader to a bigger model?", "monitor"),  # figure first
        # near misses: the agent's own work, the market, this answer's length
        ("what is the trader's latest BTC report", "trader"),
        ("Switch to the 4-hour chart for ETH", "trader"),
        ("What's the percentage change of ETH today?", "trader"),
        ("Run a backtest over a longer time frame", "trader"),
        ("How long has BTC been in a downtrend?", "trader"),
        ("How long will the rally take?", "trader"),
        ("Make a better trade than yesterday", "trader"),
        ("How much memory does the model use?", "monitor"),
        ("Score the monitor's last health report: all green, CPU 12%", "optimizer"),
    ],
)
def test_requests_about_the_team_reach_the_right_specialist(task: str, expected: str) -> None:
    d = router().decide([U(task)])
    assert (d.speaker, d.method, d.confidence) == (expected, "rules", 0.9), d
    assert d.candidates == (expected,), d  # the agent the clause names is its topic, not a step


def test_a_claim_is_one_clause_of_the_plan() -> None:
    task = U("What's the BTC price, and how many tokens did that take?")
    assert next_of(task) == ("trader", "rules")
    assert next_of(task, Turn("trader", TREND)) == ("monitor", "rules")
    assert next_of(U("what's the BTC price, keep it brief")) == ("trader", "rules")
    assert next_of(U("make it shorter")) == ("alina", "done")  # ALINA's last answer, not an agent
    cond = U("If the system is healthy, switch the trader to a bigger model")
    assert next_of(cond) == ("monitor", "rules")
    assert next_of(cond, Turn("monitor", HEALTHY)) == ("optimizer", "rules")
    assert next_of(cond, Turn("monitor", DEGRADED)) == ("alina", "done")
    assert next_of(U("@trader how many tokens did you use?")) == ("trader", "mention")  # a mention wins


def test_claims_are_data_from_the_prompt_files() -> None:
    profiles = [
        AgentProfile("alina", "the lead", ("hello",)),
        AgentProfile("trader", "markets", ("price", "chart")),
        AgentProfile("monitor", "health", ("health",), claims=((("chart", "charts"), ("<agent>", "team")),)),
    ]
    r = Router(profiles, embedder=None)
    assert r.decide([U("draw the price chart")]).speaker == "trader"
    assert r.decide([U("chart the trader's health")]).speaker == "monitor"  # <agent>: any agent's name
    assert r.decide([U("a chart of the team")]).speaker == "monitor"
    assert r.claimant("what is the price") is None
    assert load_prompt("optimizer").claims and load_prompt("monitor").claims
    assert not load_prompt("trader").claims  # nothing in code names the claiming agents


def test_roles_are_data_a_team_with_other_names_routes_the_same_way() -> None:
    """Who reports on health and on trends, who scores the others and who places orders come
    from the profiles (``reports``, ``scores_others``, ``side_effects`` in the prompt files),
    never from agent names in the router: a team named differently behaves the same."""
    profiles = [
        AgentProfile("alina", "the lead", ("hello",)),
        AgentProfile("broker", "markets", ("price", "buy", "trend"), reports=("trend",), side_effects=True),
        AgentProfile("watcher", "the machine", ("health", "cpu"), reports=("health",)),
        AgentProfile("critic", "quality", ("score", "rate"), scores_others=True),
    ]

    def nxt(r: Router, *turns: Turn) -> tuple[str | None, str]:
        d = r.decide(list(turns))
        return d.speaker, d.method

    r = Router(profiles, embedder=None)
    assert r.reporters == {"trend": "broker", "health": "watcher"}
    cond = U("If the system is healthy, buy 0.01 BTC")
    assert nxt(r, cond) == ("watcher", "rules")  # the health reporter decides the condition first
    assert nxt(r, cond, Turn("watcher", HEALTHY)) == ("broker", "rules")
    assert nxt(r, cond, Turn("watcher", DEGRADED)) == ("alina", "done")
    assert nxt(r, U("rate the BTC price summary")) == ("broker", "rules")  # the critic waits for it
    assert nxt(r, U("rate the BTC price summary"), Turn("broker", TREND)) == ("critic", "rules")
    safe = Router(profiles, embedder=None, mode="safe")
    assert nxt(safe, U("buy 0.01 BTC now")) == ("alina", "safe")  # side_effects, whatever its name
    assert nxt(safe, U("what is the BTC price?")) == ("broker", "rules")  # reading is fine
    # without a health reporter a health condition is no condition: nobody is asked to report
    plain = Router([profiles[0], replace(profiles[1], reports=())], embedder=None)
    assert plain.reporters == {} and nxt(plain, U("If the system is healthy, buy BTC")) == ("broker", "rules")
    with pytest.raises(ValueError, match="one agent decides a domain"):
        Router([*profiles, AgentProfile("other", "x", ("y",), reports=("health",))], embedder=None)
    shipped = {n: load_prompt(n) for n in NAMES}
    assert [n for n, p in shipped.items() if p.side_effects] == ["trader"]
    assert {d: n for n, p in shipped.items() for d in p.reports} == {"health": "monitor", "trend": "trader"}
    assert [n for n, p in shipped.items() if p.scores_others] == ["optimizer"]


def test_a_prompt_file_with_a_bad_role_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (prompts_module.PROMPT_DIR / "monitor.yaml").read_text()
    monkeypatch.setattr(prompts_module, "PROMPT_DIR", tmp_path)
    for bad, match in (
        ("reports: [weather]", "report domains are health, trend"),
        ("reports: health", "must be a list"),
        ("side_effects: maybe", "side_effects must be true or false"),
    ):
        (tmp_path / "monitor.yaml").write_text(text.replace("reports: [health]", bad))
        load_prompt.cache_clear()
        with pytest.raises(PromptError, match=match):
            load_prompt("monitor")
    load_prompt.cache_clear()


def test_text_after_an_evaluation_colon_is_material_not_requests() -> None:
    for task in (
        "Score this answer: BTC rose 3% yesterday.",
        "Score this: the market is down 4% and memory is fine",
    ):
        assert next_of(U(task))[0] == "optimizer"
        assert next_of(U(task), Turn("optimizer", SCORE))[0] == "alina"
    # a colon that introduces a list of requests still splits them
    assert (
        next_of(U("Three things: memory use, the bitcoin price, and a score of the price report."))[0]
        == "monitor"
    )


def test_after_and_before_reorder_the_steps() -> None:
    assert next_of(U("Report memory usage after you fetch the BTC price"))[0] == "trader"
    assert next_of(U("Before looking at the market, make sure the system is OK."))[0] == "monitor"


def test_one_turn_per_agent_for_consecutive_asks() -> None:
    task = U("Give me the BTC price and the 24h trend")
    assert next_of(task, Turn("trader", TREND))[0] == "alina"


@pytest.mark.parametrize(
    "task",
    [
        "Hello!",
        "Thanks, that's all for now.",
        "Who are you?",
        "Explain what a candlestick chart is.",
        "What does volatility mean in trading?",
    ],
)
def test_alina_answers_directly_when_no_specialist_is_needed(task: str) -> None:
    assert next_of(U(task)) == ("alina", "done")


def test_questions_about_alinas_own_answer_go_to_alina() -> None:
    earlier = [U("Is the system healthy?"), Turn("monitor", HEALTHY), Turn("alina", "The system is healthy.")]
    assert router().decide([*earlier, U("Why did you say the system is healthy?")]).speaker == "alina"


def test_follow_ups_reuse_the_previous_requests_specialist() -> None:
    earlier = [
        U("What is the BTC trend over the last day?"),
        Turn("trader", TREND),
        Turn("alina", "Down 4%."),
    ]
    d = router().decide([*earlier, U("again please")])
    assert (d.speaker, d.method) == ("trader", "follow_up")
    assert router().decide([*earlier, U("And over the last week?")]).speaker == "trader"
    assert router().decide([*earlier, U("Now check memory.")]).speaker == "monitor"
    assert router().decide([*earlier, U("again please"), Turn("trader", TREND)]).speaker == "alina"


def test_no_rule_and_no_model_leaves_the_choice_open_with_candidates() -> None:
    d = router().decide([U("Something feels off today.")])
    assert d.speaker is None and d.method == "model"
    assert set(d.candidates) >= {"trader", "monitor", "optimizer"}


# --------------------------------------------------------------------------- the lexical scorer


def test_stemming_matches_word_forms() -> None:
    assert stem("scores") == stem("scoring") == stem("scored") == stem("score")
    assert stem("prices") == stem("price")
    assert stem("candles") == stem("candle")


def test_lexical_scorer_prefers_the_agent_with_the_closest_example() -> None:
    profiles = profiles_from_prompts({n: load_prompt(n) for n in NAMES})
    scorer = LexicalScorer(profiles)
    ranked, conf = scorer.rank("how busy is the processor right now")
    assert ranked[0][0] == "monitor" and conf > 0.6
    ranked, conf = scorer.rank("give the reply a mark")
    assert ranked[0][0] == "optimizer"
    _, weak = scorer.rank("two things")  # one shared word out of two: not trusted
    assert weak < 0.6
    assert scorer.rank("zzz qqq")[1] == 0.0


def test_lexical_scores_are_classic_bm25_of_the_best_document() -> None:
    # A corpus small enough to score by hand: BM25 (k1 1.2, b 0.5, Lucene idf) of each document,
    # an agent's score its best document's.
    docs = {"a": ["price candle", "candle candle trend"], "b": ["cpu memory"]}
    scorer = LexicalScorer([AgentProfile(n, d[0], examples=tuple(d[1:])) for n, d in docs.items()])
    k1, b, n, avgdl = 1.2, 0.5, 3, (2 + 3 + 2) / 3

    def bm25(tf: int, dl: int, df: int) -> float:
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

    got = scorer.scores("which candle")
    assert got["a"] == pytest.approx(max(bm25(1, 2, 2), bm25(2, 3, 2)), rel=1e-6)
    assert got["b"] == 0.0
    assert scorer.scores("cpu")["b"] == pytest.approx(bm25(1, 2, 1), rel=1e-6)


def test_a_confident_lexical_match_routes_without_keywords() -> None:
    d = router().decide([U("How good was that answer?")])
    assert (d.speaker, d.method) == ("optimizer", "lexical")
    assert 0.6 <= d.confidence <= 1.0


# --------------------------------------------------------------------------- robust name matching


@pytest.mark.parametrize(
    ("reply", "name"),
    [
        ("trader", "trader"),
        ("Trader", "trader"),
        ("**monitor**", "monitor"),
        ("`optimizer`", "optimizer"),
        ("traders", "trader"),
        ("The optimizer's turn.", "optimizer"),
        ('{"speaker": "monitor"}', "monitor"),
        ('{"speaker": "Monitor"}', "monitor"),
        ("<think>trader could go</think> monitor", "monitor"),
        ("I pick MONITOR, then maybe trader", "monitor"),  # the first name wins
        ("risk officer", "risk_officer"),
        ("nobody here", None),
        ("", None),
    ],
)
def test_match_name_is_case_insensitive_and_markdown_tolerant(reply: str, name: str | None) -> None:
    assert match_name(reply, ["trader", "monitor", "optimizer", "risk_officer"]) == name


# --------------------------------------------------------------------------- the model step


async def test_the_model_decides_only_when_unsure_with_an_enum_of_candidates() -> None:
    client = replay('{"speaker": "monitor"}')
    r = router(client=client)
    d = await r.route([U("Something feels off today.")])
    assert (d.speaker, d.method) == ("monitor", "model")
    call = client.create_calls[0]
    schema = call["json_output"].model_json_schema()
    enum = schema["properties"]["speaker"]["enum"] if "enum" in schema["properties"]["speaker"] else None
    assert enum is not None and set(enum) == set(d.candidates) and "monitor" in enum
    # a clear case never reaches the model (the replay has no second answer)
    d = await r.route([U("Is the system healthy?")])
    assert (d.speaker, d.method) == ("monitor", "rules")
    assert len(client.create_calls) == 1


async def test_free_text_model_replies_are_matched_robustly() -> None:
    d = await router(client=replay("**Optimizer**")).route([U("Something feels off today.")])
    assert (d.speaker, d.method) == ("optimizer", "model")


async def test_an_unusable_model_reply_falls_back_to_the_best_lexical_guess() -> None:
    d = await router(client=replay("I cannot decide")).route([U("Something feels off today.")])
    assert d.method == "fallback" and d.speaker == d.candidates[0]


class _TimesOut(ReplayChatCompletionClient):
    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        raise ModelTimeoutError("scripted timeout")


class _Blocked(ReplayChatCompletionClient):
    async def create(self, *args: Any, **kwargs: Any) -> CreateResult:
        raise RealModelCallBlocked("blocked")


async def test_a_failing_model_falls_back_and_a_blocked_one_fails_loudly() -> None:
    d = await router(client=_TimesOut([], model_info=INFO)).route([U("Something feels off today.")])  # type: ignore[arg-type]
    assert d.method == "fallback" and "ModelTimeoutError" in d.reason
    with pytest.raises(RealModelCallBlocked):
        await router(client=_Blocked([], model_info=INFO)).route([U("Something feels off today.")])  # type: ignore[arg-type]


async def test_without_a_client_the_selector_func_defers_to_autogen_with_candidates() -> None:
    r = router()
    assert await r.selector_func([TextMessage(source="user", content="Something feels off today.")]) is None
    assert set(r.candidate_func([])) >= {"trader", "monitor", "optimizer"}


# --------------------------------------------------------------------------- metrics and persistence


async def test_every_decision_is_counted_in_the_metrics() -> None:
    before = val("alina_routing_decisions_total", method="safe")
    before_n = val("alina_routing_confidence_count")
    await router("safe").route([U("Buy 1 BTC")])
    assert val("alina_routing_decisions_total", method="safe") == before + 1
    assert val("alina_routing_confidence_count") == before_n + 1


async def test_the_run_loop_writes_every_decision_to_the_sink() -> None:
    names = ("alina", "trader", "monitor", "optimizer", "selector")
    scripts: dict[str, list[Any]] = {
        "selector": ['{"speaker": "monitor"}'],
        "monitor": [_call("system_health")],
        "alina": ["All good."],
    }
    clients = {n: ResilientClient(n, replay(*scripts.get(n, [])), retries=0) for n in names}  # type: ignore[arg-type]
    sink = MemorySink()
    r = await TeamRunner(AlinaConfig(), sink=sink, clients=clients).run("Something feels off today.")  # type: ignore[arg-type]
    assert r.status == "completed", r.error
    assert [(d.speaker, d.method) for d in r.routing] == [("monitor", "model"), ("alina", "done")]
    rows = sink.routing(r.run_id)
    assert [(d.seq, d.speaker, d.method) for d in rows] == [(1, "monitor", "model"), (2, "alina", "done")]
    assert all(isinstance(d.candidates, tuple) and d.candidates for d in rows)


async def test_safe_mode_in_a_team_run() -> None:
    names = ("alina", "trader", "monitor", "optimizer", "selector")
    answer = ["Order placement is disabled in safe mode."]
    clients = {n: ResilientClient(n, replay(*(answer if n == "alina" else [])), retries=0) for n in names}
    runner = TeamRunner(AlinaConfig(), clients=clients, mode="safe")  # type: ignore[arg-type]
    r = await runner.run("Buy 0.01 BTC at market")
    assert r.status == "completed", r.error
    assert [(d.speaker, d.method) for d in r.routing] == [("alina", "safe")]
    assert r.tool_calls == 0


# --------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "user"}, "JSON list"),
        ([], "empty"),
        ([{"source": "bob", "content": "hi"}], "unknown source 'bob'"),
        ([{"source": "user", "content": 3}], "content must be a string"),
        ([{"source": "user", "content": "x", "type": "tool_result"}], "type must be one of"),
        ([{"source": "user", "content": "x", "extra": 1}], "unknown keys"),
        (["hello"], "must be an object"),
    ],
)
def test_bad_snapshots_are_rejected_with_the_reason(data: Any, message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        parse_snapshot(data, NAMES)


# --------------------------------------------------------------------------- prompt files


def _write(tmp: Path, body: str) -> None:
    (tmp / "trader.yaml").write_text(body)


def test_prompt_files_accept_examples_and_still_reject_unknown_keys(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(prompts_module, "PROMPT_DIR", tmp_path)
    base = "name: trader\nversion: 1\ndescription: d\nsystem: s\n"
    try:
        _write(tmp_path, base + "examples: [what is the price, how is the market]\n")
        load_prompt.cache_clear()
        assert load_prompt("trader").examples == ("what is the price", "how is the market")
        _write(tmp_path, base + "examples: what is the price\n")
        load_prompt.cache_clear()
        with pytest.raises(PromptError, match="examples must be a list"):
            load_prompt("trader")
        _write(tmp_path, base + "exampels: [x]\n")
        load_prompt.cache_clear()
        with pytest.raises(PromptError, match="unknown keys"):
            load_prompt("trader")
    finally:
        load_prompt.cache_clear()


def test_prompt_files_validate_claims(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(prompts_module, "PROMPT_DIR", tmp_path)
    base = "name: trader\nversion: 1\ndescription: d\nsystem: s\n"
    try:
        _write(tmp_path, base + "claims:\n  - [[Switch, change], [the  Model]]\n  - [[redis]]\n")
        load_prompt.cache_clear()
        assert load_prompt("trader").claims == ((("switch", "change"), ("the model",)), (("redis",),))
        bad_claims = ("[switch, model]", "[[]]", "[[[model, '']]]", "x")
        for bad in bad_claims:
            _write(tmp_path, base + f"claims: {bad}\n")
            load_prompt.cache_clear()
            with pytest.raises(PromptError, match="claims"):
                load_prompt("trader")
    finally:
        load_prompt.cache_clear()


def test_every_agent_prompt_has_keywords_and_examples() -> None:
    for name in NAMES:
        p = load_prompt(name)
        assert p.examples and p.keywords, name


# --------------------------------------------------------------------------- the labeled set


def _labeled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SET_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_labeled_set_is_well_formed() -> None:
    rows = _labeled()
    assert len(rows) >= 150
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) >= {"id", "snapshot", "expected", "note", "split"}, r["id"]
        assert r["expected"] in NAMES and r["split"] in ("tune", "heldout"), r["id"]
        parse_snapshot(r["snapshot"], NAMES)
    share = Counter(r["split"] for r in rows)["heldout"] / len(rows)
    assert 0.25 <= share <= 0.35


def test_the_router_without_the_model_is_accurate_on_the_labeled_set() -> None:
    rows = _labeled()
    scored = [r for r in rows if not r.get("needs_model")]
    per_split: dict[str, list[bool]] = {"tune": [], "heldout": []}
    for r in scored:
        got = router(r.get("mode", "normal")).decide(parse_snapshot(r["snapshot"], NAMES)).speaker
        per_split[r["split"]].append(got == r["expected"])
    hits = [ok for oks in per_split.values() for ok in oks]
    accuracy = sum(hits) / len(hits)
    report = {k: f"{sum(v)}/{len(v)}" for k, v in per_split.items()}
    print(
        f"labeled set without the model: {accuracy:.3f} {report}; "
        f"{len(rows) - len(scored)} snapshots marked needs_model excluded"
    )
    assert accuracy >= 0.95, report
    assert all(sum(v) / len(v) >= 0.9 for v in per_split.values()), report
