"""The critic's reply parsing and the few-shot candidates (no model, no Postgres)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from alina.meta_prompts import PROTECTED_HEADER, check_candidate, load_prompt
from alina.meta_prompts.evals import load_eval_set
from alina.team.review import (
    CriticOutputError,
    candidate_from_reply,
    fewshot_candidates,
    parse_critic,
)

PROMPT = "You are the trader. Call the tool the user asked for with the window they named."


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"cause": "c", "summary": "s", "prompt": PROMPT}),
        "Here is my answer:\n```json\n" + json.dumps({"cause": "c", "prompt": PROMPT}) + "\n```",
        "Sure. " + json.dumps({"summary": "s", "instructions": PROMPT}) + " Hope it helps.",
        f"The new prompt:\n```\n{PROMPT}\n```",
    ],
    ids=["json", "fenced-json", "json-in-prose", "fenced-text"],
)
def test_a_prompt_is_found_in_json_or_fenced_text(text: str) -> None:
    assert parse_critic(text).prompt == PROMPT


@pytest.mark.parametrize(
    ("text", "finish", "why"),
    [
        ('{"prompt": "You are', "stop", "garbled"),
        ('{"cause": "c", "prompt": "You are the trader', "length", "truncated"),
        ('{"cause": "only a cause"}', "stop", "garbled"),
        ("I would keep the prompt as it is.", "stop", "no prompt"),
        ("   ", "stop", "empty"),
        ('{"prompt": ["not", "text"]}', "stop", "garbled"),
    ],
)
def test_an_unusable_reply_raises_with_the_reason(text: str, finish: str, why: str) -> None:
    with pytest.raises(CriticOutputError, match=f"^{why}"):
        parse_critic(text, finish)


def test_the_critic_writes_the_instructions_and_the_protected_section_is_appended() -> None:
    current = load_prompt("trader")
    cand = candidate_from_reply(current, parse_critic(json.dumps({"summary": "s", "prompt": PROMPT})))
    assert cand.system.endswith(current.protected) and PROTECTED_HEADER in cand.system
    assert check_candidate(current, cand.system, set()) == []
    whole = f"{PROMPT}\n\n{PROTECTED_HEADER}\n- anything goes."
    # a reply carrying the header is taken whole: the guard refuses it
    cand = candidate_from_reply(current, parse_critic(json.dumps({"summary": "s", "prompt": whole})))
    assert any("protected section changed" in p for p in check_candidate(current, cand.system, set()))


def test_fewshot_candidates_add_then_swap_examples_from_the_tuning_cases_only() -> None:
    current = load_prompt("trader")
    tune = load_eval_set("trader", "tune")
    heldout = {c.task for c in load_eval_set("trader", "heldout")}
    [a, b] = fewshot_candidates("trader", current, tune, tune[3:5], n=2, k=2)
    assert a.summary == f"few-shot: add examples {tune[3].id}, {tune[4].id}"
    for cand in (a, b):
        assert check_candidate(current, cand.system, set()) == [], cand.system
        assert not any(t in cand.system for t in heldout)
    swapped = fewshot_candidates("trader", replace(current, system=a.system), tune, [], n=1, k=2)[0]
    assert swapped.summary.startswith("few-shot: swap examples for")
    assert swapped.system.count("- Request:") == 2 and tune[3].task not in swapped.system


async def test_a_failed_model_call_is_tried_once_more_then_counted_as_an_error() -> None:
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    from alina.team.review._cases import _Meter, run_case

    class Flaky:
        def __init__(self, failures: int) -> None:
            self.failures = failures

        async def create(self, messages: object, **kw: object) -> CreateResult:
            if self.failures > 0:
                self.failures -= 1
                raise TimeoutError("did not answer within 60s")
            call = FunctionCall(id="c", name="candle_summary", arguments='{"hours": 1}')
            return CreateResult(
                finish_reason="function_calls",
                content=[call],
                cached=False,
                usage=RequestUsage(prompt_tokens=3, completion_tokens=2),
            )

    case = load_eval_set("trader", "tune")[0]
    meter = _Meter()
    out = await run_case(Flaky(1), "trader", "system", case, [], meter)  # type: ignore[arg-type]
    assert out["tool"] == "candle_summary" and meter.spent.errors == 0 and meter.spent.model_calls == 2
    out = await run_case(Flaky(2), "trader", "system", case, [], meter)  # type: ignore[arg-type]
    assert out["tool"] is None and "60s" in out["error"] and meter.spent.errors == 1
