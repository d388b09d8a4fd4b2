"""The frozen evaluation sets and the per-case score: sizes and splits, real tool texts, every
case satisfiable (its reference scores 1.0), and wrong outputs scoring lower."""

from __future__ import annotations

import pytest

from alina.meta_prompts.evals import AGENTS, load_eval_set, score_case, split
from alina.skills.builtin import candle_summary, get_price


@pytest.mark.parametrize("agent", AGENTS)
def test_each_set_has_30_cases_split_about_70_30(agent: str) -> None:
    cases = load_eval_set(agent)
    tune, heldout = split(cases)
    assert len(cases) >= 30 and len(tune) + len(heldout) == len(cases)
    assert 0.25 <= len(heldout) / len(cases) <= 0.35
    assert len({c.id for c in cases}) == len(cases)
    assert load_eval_set(agent, "heldout") == heldout


@pytest.mark.parametrize("agent", AGENTS)
def test_every_reference_output_scores_one(agent: str) -> None:
    for case in load_eval_set(agent):
        assert score_case(agent, case, case.reference) == 1.0, case.id


def test_trader_reports_are_the_real_tools_output_on_the_packaged_data() -> None:
    for case in load_eval_set("trader"):
        args = case.expect["args"]
        fresh = (
            candle_summary("BTC/USDT", args["hours"])
            if case.expect["tool"] == "candle_summary"
            else get_price(args["symbol"])
        )
        assert case.reports[0].content == fresh, case.id


def test_trader_case_wants_hours_6_for_the_last_6_hours() -> None:
    case = next(c for c in load_eval_set("trader") if "last 6 hours" in c.task)
    assert case.expect["tool"] == "candle_summary" and case.expect["args"] == {"hours": 6}
    text = case.reference["text"]
    assert score_case("trader", case, {"tool": "candle_summary", "args": {"hours": 24}, "text": text}) < 1.0
    assert score_case("trader", case, {"tool": "get_price", "args": {}, "text": text}) < 0.8
    assert score_case("trader", case, text) < score_case("trader", case, case.reference)


def test_specialist_tools_per_agent() -> None:
    assert {c.expect["tool"] for c in load_eval_set("monitor")} == {"system_health"}
    assert {c.expect["tool"] for c in load_eval_set("optimizer")} == {"score_answer"}
    assert {c.expect["tool"] for c in load_eval_set("trader")} == {"candle_summary", "get_price"}


def test_alina_wrong_answers_score_lower() -> None:
    case = next(
        c for c in load_eval_set("alina") if "downtrend" in c.expect["states"] and len(c.reports) == 1
    )
    assert score_case("alina", case, case.reference) == 1.0
    invented = score_case("alina", case, "BTC rose 12.5% in a strong uptrend.")
    vague = score_case("alina", case, "The market moved.")
    assert invented < vague < 1.0
    assert score_case("alina", case, "") < 1.0


def test_score_is_pure_and_bounded() -> None:
    case = load_eval_set("monitor")[0]
    outs = [case.reference, "error: boom", {"tool": "system_health"}, None, "healthy"]
    for out in outs:
        s = score_case("monitor", case, out)
        assert 0.0 <= s <= 1.0 and s == score_case("monitor", case, out)
