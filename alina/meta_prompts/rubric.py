"""Deterministic rubric for scoring an agent's answer to a task (no model involved).

Criteria (each pass/fail, all weighted equally):

* ``non_empty`` – the answer has visible text. If it fails, the score is 0.
* ``length_ok`` – between :data:`MIN_CHARS` and :data:`MAX_CHARS` characters after stripping.
* ``has_numbers`` – the answer contains a number. Only applied when the task asks about
  prices, trends or other market figures (see :data:`NUMERIC_TASK_WORDS`).
* ``on_topic`` – the answer mentions at least :data:`MIN_TOPIC_SHARE` of the task's key terms
  (words of 3+ letters that are not stop words; a term matches on its first 5 letters, so
  "trending" matches "trend"). Only applied when the task has key terms.
* ``no_refusal`` – no refusal/apology boilerplate ("as an AI", "I'm sorry", "I cannot", ...).
* ``no_repetition`` – no repetition loop: no word repeated 4+ times in a row, no line repeated
  3+ times, and (for 20+ words) at least half of the word 3-grams are distinct.
* ``no_special_tokens`` – no leaked chat-template tokens such as ``<|im_end|>``.

Criteria that do not apply are left out of ``criteria`` (and named in ``notes``), so the score
is ``passed / applicable``, rounded to 2 decimals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MIN_CHARS = 15
MAX_CHARS = 1500
MIN_TOPIC_SHARE = 0.3

NUMERIC_TASK_WORDS = frozenset(
    {
        "price",
        "prices",
        "trend",
        "trends",
        "close",
        "open",
        "high",
        "low",
        "change",
        "volatility",
        "volume",
        "percent",
        "percentage",
        "how much",
        "cost",
        "value",
        "worth",
        "summary",
        "summarize",
        "summarise",
        "latency",
        "cpu",
        "memory",
        "score",
        "candle",
        "candles",
        "return",
        "returns",
        "pnl",
        "profit",
        "loss",
        "balance",
    }
)
STOP_WORDS = frozenset(
    """a an the and or but if then than so of to in on at by for with from into about over under
    is are was were be been being do does did done have has had having it its this that these
    those there here what which who whom whose when where why how can could should would will
    shall may might must please tell give show me my our your you we they them their i he she
    his her us any some all each every just also very more most less least much many now today
    current currently latest last get let make use using find need want know like per as not no
    yes one two""".split()
)
_REFUSAL = re.compile(
    r"\b(as an ai|as a language model|i'?m an ai|language model|i am sorry|i'?m sorry|"
    r"i apologi[sz]e|my apologies|i cannot|i can'?t|i'?m unable|i am unable|i'?m not able|"
    r"i am not able|i do not have access|i don'?t have access|i don'?t have real-time|"
    r"i do not have real-time)\b",
    re.IGNORECASE,
)
_SPECIAL_TOKENS = re.compile(r"<\|[a-z_]+\|>|</?s>|\[/?INST\]|<\|endoftext\|>", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+(?:[./'][a-z0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True)
class RubricResult:
    """Score in 0..1, the pass/fail of each applicable criterion, and short notes."""

    score: float
    criteria: dict[str, bool]
    notes: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """``score 0.xx: criterion=pass/fail, ...`` (one line)."""
        parts = ", ".join(f"{k}={'pass' if v else 'fail'}" for k, v in self.criteria.items())
        return f"score {self.score:.2f}: {parts}"


def key_terms(task: str) -> list[str]:
    """Distinct lower-case key terms of ``task`` (3+ chars, not stop words), in order."""
    seen: dict[str, None] = {}
    for w in _WORD.findall(task.lower()):
        for part in re.split(r"[/.']", w):
            if len(part) >= 3 and part not in STOP_WORDS and not part.isdigit():
                seen.setdefault(part, None)
    return list(seen)


def asks_for_numbers(task: str) -> bool:
    """True when the task asks about prices, trends or other figures."""
    low = task.lower()
    words = set(_WORD.findall(low))
    return any((w in words) if " " not in w else (w in low) for w in NUMERIC_TASK_WORDS)


def _has_repetition_loop(text: str) -> str | None:
    words = [w.lower() for w in _WORD.findall(text)]
    run = 1
    for a, b in zip(words, words[1:], strict=False):
        run = run + 1 if a == b else 1
        if run >= 4:
            return f"word {a!r} repeated {run}+ times in a row"
    lines = [ln.strip().lower() for ln in text.splitlines() if ln.strip()]
    for ln in set(lines):
        if lines.count(ln) >= 3:
            return "a line is repeated 3+ times"
    if len(words) >= 20:
        grams = list(zip(words, words[1:], words[2:], strict=False))
        if len(set(grams)) / len(grams) < 0.5:
            return "fewer than half of the word 3-grams are distinct"
    return None


def score(answer: str, task: str = "") -> RubricResult:
    """Score ``answer`` to ``task`` with the rubric in this module's docstring."""
    text = (answer or "").strip()
    task = task or ""
    criteria: dict[str, bool] = {}
    notes: list[str] = []

    criteria["non_empty"] = bool(text)
    if not text:
        return RubricResult(0.0, {"non_empty": False}, ["empty answer"])

    criteria["length_ok"] = MIN_CHARS <= len(text) <= MAX_CHARS
    if not criteria["length_ok"]:
        notes.append(f"length {len(text)} chars outside {MIN_CHARS}..{MAX_CHARS}")

    if asks_for_numbers(task):
        criteria["has_numbers"] = bool(_NUMBER.search(text))
        if not criteria["has_numbers"]:
            notes.append("task asks for figures but the answer has no number")
    else:
        notes.append("has_numbers n/a")

    terms = key_terms(task)
    if terms:
        low = text.lower()
        hits = [t for t in terms if t[:5] in low]
        needed = max(1, round(MIN_TOPIC_SHARE * len(terms)))
        criteria["on_topic"] = len(hits) >= needed
        if not criteria["on_topic"]:
            shown = ", ".join(terms[:5])
            notes.append(f"mentions {len(hits)}/{len(terms)} key terms, needs {needed}: {shown}")
    else:
        notes.append("on_topic n/a")

    m = _REFUSAL.search(text)
    criteria["no_refusal"] = m is None
    if m:
        notes.append(f"refusal/apology boilerplate: {m.group(0)!r}")

    loop = _has_repetition_loop(text)
    criteria["no_repetition"] = loop is None
    if loop:
        notes.append(loop)

    tok = _SPECIAL_TOKENS.search(text)
    criteria["no_special_tokens"] = tok is None
    if tok:
        notes.append(f"leaked template token {tok.group(0)}")

    value = round(sum(criteria.values()) / len(criteria), 2)
    return RubricResult(value, criteria, notes)
