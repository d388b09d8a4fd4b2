"""Tests for alina.meta_prompts.rubric."""

from __future__ import annotations

import re

from alina.meta_prompts.rubric import MAX_CHARS, RubricResult, asks_for_numbers, key_terms, score

TASK = "What is the current BTC/USDT price and trend?"
GOOD = "BTC/USDT last price 21,925.7; over the last 24h of data it fell 4.25%, a downtrend."


def test_good_answer_scores_full():
    r = score(GOOD, TASK)
    assert isinstance(r, RubricResult)
    assert r.score == 1.0
    assert all(r.criteria.values())
    assert set(r.criteria) == {
        "non_empty",
        "length_ok",
        "has_numbers",
        "on_topic",
        "no_refusal",
        "no_repetition",
        "no_special_tokens",
    }


def test_empty_answer_scores_zero():
    for empty in ("", "   \n"):
        r = score(empty, TASK)
        assert r.score == 0.0 and r.criteria == {"non_empty": False}


def test_refusal_boilerplate_fails():
    r = score("I'm sorry, as an AI language model I cannot access real-time BTC prices or trends.", TASK)
    assert r.criteria["no_refusal"] is False
    assert r.criteria["has_numbers"] is False
    assert r.score < 0.8
    assert any("refusal" in n for n in r.notes)


def test_repetition_loop_fails():
    loop = "The price is up. " * 12
    r = score(loop, TASK)
    assert r.criteria["no_repetition"] is False
    assert score("price price price price up 21,000", TASK).criteria["no_repetition"] is False
    assert score("BTC 21,000\nBTC 21,000\nBTC 21,000", TASK).criteria["no_repetition"] is False
    assert score(GOOD, TASK).criteria["no_repetition"] is True


def test_numbers_required_only_for_figure_tasks():
    r = score("Bitcoin is trending down against tether lately.", TASK)
    assert r.criteria["has_numbers"] is False
    r2 = score("Hello! I am the planner agent and I coordinate the team.", "Introduce yourself")
    assert "has_numbers" not in r2.criteria
    assert any("has_numbers n/a" in n for n in r2.notes)
    assert asks_for_numbers("how much is BTC worth") and not asks_for_numbers("say hi to the team")


def test_off_topic_fails():
    r = score("The weather in Paris is sunny with 25 degrees today.", TASK)
    assert r.criteria["on_topic"] is False
    assert key_terms(TASK) == ["btc", "usdt", "price", "trend"]
    assert "on_topic" not in score("hello there friend", "").criteria


def test_length_and_special_tokens():
    assert score("21k", TASK).criteria["length_ok"] is False
    long = " ".join(f"BTC price point {i} trend" for i in range(400))
    assert len(long) > MAX_CHARS and score(long, TASK).criteria["length_ok"] is False
    r = score(GOOD + "<|im_end|>", TASK)
    assert r.criteria["no_special_tokens"] is False and r.score < 1.0


def test_deterministic_and_ordered():
    bad = "I'm sorry, I cannot help. I'm sorry, I cannot help. I'm sorry, I cannot help."
    assert score(GOOD, TASK) == score(GOOD, TASK)
    assert score(GOOD, TASK).score > score(bad, TASK).score


def test_to_text_format():
    text = score("Bitcoin is trending down against tether lately.", TASK).to_text()
    assert re.fullmatch(r"score \d\.\d\d: (\w+=(pass|fail))(, \w+=(pass|fail))*", text)
    assert "has_numbers=fail" in text
