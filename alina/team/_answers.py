"""ALINA's final answer, checked in code against the run's own reports.

A small model writes fluent prose that drifts from the facts (asked for the trend and the
health, it answered "the system is healthy" and invented a "normal day-to-day operation"). The
checker does not trust it; it reads the answer against what the specialists reported in this
run:

* **grounded**: every number and every state word (healthy/degraded, uptrend/downtrend/sideways,
  filled/canceled/rejected/refused) in the answer is in a report of the conversation or in the
  task (a number may be rounded: 21,925.7 may be said as 21,926 or 21.9k is not accepted);
* **complete**: for every specialist that reported in this run, the answer carries at least one of
  its key facts (a state it names, or one of its figures);
* **consistent**: it never names a state that a report of this run contradicts (the trader says
  downtrend, the answer says uptrend).

:class:`AnswerCheckClient` wraps ALINA's model client: an answer that fails is regenerated once
with the checker's findings; if it fails again, ALINA answers with a compact digest of the
reports, labelled as such, never with invented facts. Each check is handed to the run loop
(:class:`~alina.skills.context.RunContext` ``answer_checks``), which stores it with the message.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from autogen_core.models import (
    CreateResult,
    LLMMessage,
    RequestUsage,
    UserMessage,
)

from alina.config import ORCHESTRATOR
from alina.models import WrappedClient
from alina.models._stream import no_token_sink
from alina.skills.context import ChatMessage, current_run_context
from alina.team._routing import report_states

__all__ = [
    "AnswerCheck",
    "AnswerCheckClient",
    "check_answer",
    "check_output",
    "digest",
    "run_reports",
]

logger = logging.getLogger(__name__)
REPORT_TYPES = ("ToolCallSummaryMessage", "TextMessage")
DIGEST_HEAD = "Digest of this run's reports (my own answer did not pass the fact check):"
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_DATES = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2})?)?|\b\d{1,2}:\d{2}\b")
_ORDER_STATES = re.compile(r"\b(filled|cancell?ed|rejected|refused)\b")
_DOMAINS = ("health", "trend")
# How prose says a trend, beyond the report's own words (report_states reads those): "BTC fell
# 4%" carries the downtrend, "it rose" contradicts it. Bare "up"/"down" are too common to count.
_TREND_VERBS = (
    ("downtrend", re.compile(r"\b(fell|fallen|dropped|declin(?:ed|ing)|decreas(?:ed|ing)|lost|slid|sank)\b")),
    ("uptrend", re.compile(r"\b(rose|risen|gained|increas(?:ed|ing)|climbed|rallied)\b")),
)


@dataclass(frozen=True)
class _Facts:
    numbers: tuple[float, ...]
    key_numbers: tuple[float, ...]
    states: dict[str, frozenset[str]]
    """domain -> states named (health, trend, order)."""


@dataclass
class AnswerCheck:
    """The verdict on one answer; ``outcome`` says how the answer that was kept came to be."""

    grounded: bool
    complete: bool
    consistent: bool
    findings: list[str] = field(default_factory=list)
    outcome: str = "passed"
    """passed (first try) | regenerated (passed the second time) | digest (the reports' digest)."""
    attempts: int = 1

    @property
    def passed(self) -> bool:
        return self.grounded and self.complete and self.consistent

    @property
    def score(self) -> float:
        """The share of the three criteria the first answer met (0..1)."""
        return (self.grounded + self.complete + self.consistent) / 3

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "score": round(self.score, 3)}

    def summary(self) -> str:
        """One line for the console: outcome and, when it failed, the first findings."""
        if self.outcome == "passed":
            return "passed (grounded, complete, consistent)"
        why = "; ".join(self.findings[:3])
        return f"{self.outcome} ({why})" if why else self.outcome


def _num(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").replace("−", "-"))
    except ValueError:
        return None


def _numbers(text: str) -> list[tuple[float, int]]:
    """Numbers in ``text`` with their count of decimals (dates and clock times left out)."""
    out = []
    for m in _NUMBER.finditer(_DATES.sub(" ", text)):
        raw = m.group(0)
        value = _num(raw)
        if value is not None and math.isfinite(value):
            decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
            out.append((value, decimals))
    return out


def _facts(texts: Iterable[str]) -> _Facts:
    numbers: list[float] = []
    key: list[float] = []
    states: dict[str, set[str]] = {d: set() for d in (*_DOMAINS, "order")}
    for text in texts:
        for value, decimals in _numbers(text):
            numbers.append(value)
            if decimals or abs(value) >= 10:
                key.append(value)
        low = text.lower()
        for domain in _DOMAINS:
            states[domain].update(report_states(low, domain))
        states["trend"].update(state for state, verb in _TREND_VERBS if verb.search(low))
        states["order"].update(s.replace("cancelled", "canceled") for s in _ORDER_STATES.findall(low))
    return _Facts(tuple(numbers), tuple(key), {d: frozenset(s) for d, s in states.items()})


def _matches(said: float, decimals: int, known: Iterable[float]) -> bool:
    """``said`` is ``known`` (sign aside: "down 4.25%" says -4.25%) or a rounding of it."""
    for k in known:
        if abs(abs(said) - abs(k)) <= 0.5 * 10 ** (-decimals) + 1e-9 * max(1.0, abs(k)):
            return True
    return False


def run_reports(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The specialists' reports of the current run: their chat messages after the last user
    message (a resumed run's thread and a chat's earlier tasks come before it)."""
    start = max((i for i, m in enumerate(messages) if m.source == "user"), default=-1) + 1
    return [
        m
        for m in messages[start:]
        if m.source not in ("user", ORCHESTRATOR) and m.type in REPORT_TYPES and m.content.strip()
    ]


def check_answer(
    answer: str, task: str, reports: Sequence[ChatMessage], conversation: Sequence[ChatMessage] = ()
) -> AnswerCheck:
    """Judge ``answer`` against this run's ``reports`` and the ``task`` (numbers may also come
    from the earlier ``conversation``: a follow-up may restate an earlier figure)."""
    findings: list[str] = []
    sources = _facts([task, *(m.content for m in reports), *(m.content for m in conversation)])
    said = _facts([answer])
    ungrounded = [f"{v:g}" for v, d in _numbers(answer) if not _matches(v, d, sources.numbers)]
    if ungrounded:
        findings.append(f"numbers in no report: {', '.join(dict.fromkeys(ungrounded))}")
    for domain, states in said.states.items():
        unknown = sorted(states - sources.states[domain])
        if unknown:
            findings.append(f"{domain} state in no report: {', '.join(unknown)}")
    grounded = not findings
    complete = True
    by_agent: dict[str, list[str]] = {}
    for m in reports:
        by_agent.setdefault(m.source, []).append(m.content)
    for agent, texts in by_agent.items():
        facts = _facts(texts)
        carried = any(_matches(v, d, facts.key_numbers) for v, d in _numbers(answer) if d or abs(v) >= 10)
        carried = carried or any(said.states[dom] & facts.states[dom] for dom in facts.states)
        if not carried and (facts.key_numbers or any(facts.states.values())):
            complete = False
            findings.append(f"nothing from {agent}'s report")
    consistent = True
    for domain in (*_DOMAINS, "order"):
        reported = frozenset().union(*(_facts([m.content]).states[domain] for m in reports))
        clash = sorted(said.states[domain] - reported) if reported else []
        if clash:
            consistent = False
            findings.append(f"says {', '.join(clash)} where the reports say {', '.join(sorted(reported))}")
    return AnswerCheck(grounded, complete, consistent, findings)


_ORDER_START = re.compile(r"^\s*(?:\w+: )?(?:placed|canceled|cancelled)\b", re.I)
_ORDER_LINE = re.compile(r"\b(buy|sell)\b.*\b([A-Z0-9]+/[A-Z0-9]+)\b", re.I)
_REFUSED = re.compile(r"\b(?:refused|rejected)\b[^.]*?(?::|by|because|\()\s*\S", re.I)
_HEALTH_FIGURES = ("cpu", "memory")
_SCORE = re.compile(r"\bscore\s*[:=]?\s*(0(?:\.\d+)?|1(?:\.0+)?)\b", re.I)


def check_output(text: str, agent: str = "") -> tuple[float, dict[str, bool]]:
    """A specialist's report, scored by deterministic checks (score = share met): it says
    something, its tool succeeded (no ``error:``), it carries a fact (a figure or a state), and
    what its role owes:

    * trader: an order line names its side and pair, and a refused order says why;
    * monitor: the verdict (healthy/degraded) and the figures asked for (cpu, memory);
    * optimizer: a score in [0, 1].
    """
    low = text.strip().lower()
    checks = {
        "answered": bool(low),
        "tool_ok": not any(line.lstrip().startswith(("error:", "error ")) for line in low.splitlines()),
        "has_facts": bool(_numbers(text)) or any(_facts([text]).states.values()),
    }
    if agent == "trader" and re.search(r"\b(placed|canceled|cancelled|refused|rejected)\b", low):
        lines = [ln for ln in text.splitlines() if _ORDER_START.search(ln)]
        checks["order_named"] = all(_ORDER_LINE.search(ln) for ln in lines)
        if re.search(r"\b(refused|rejected)\b", low):
            checks["refusal_reasoned"] = bool(_REFUSED.search(text))
    elif agent == "monitor":
        checks["verdict"] = bool(_facts([text]).states["health"])
        checks["figures"] = all(word in low for word in _HEALTH_FIGURES)
    elif agent == "optimizer":
        checks["score"] = bool(_SCORE.search(text))
    return sum(checks.values()) / len(checks), checks


def digest(reports: Sequence[ChatMessage], max_chars: int = 220) -> str:
    """A compact, labelled digest of the reports: each specialist's latest report, first line."""
    latest: dict[str, str] = {}
    for m in reports:
        latest[m.source] = m.content.strip().splitlines()[0]
    if not latest:
        return "I have no report from the team on this, so I cannot answer it with facts."
    lines = [f"{agent}: {text[:max_chars]}" for agent, text in latest.items()]
    return DIGEST_HEAD + "\n" + "\n".join(lines)


def _feedback(check: AnswerCheck) -> str:
    return (
        "Your answer did not match the team's reports: "
        + "; ".join(check.findings)
        + ". Answer again in one or two sentences using only the facts and numbers in the reports."
    )


class AnswerCheckClient(WrappedClient):
    """ALINA's model client with the answer check in front (see the module docstring). Calls
    outside a team run, and tool or JSON calls, pass through unchecked."""

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        first = await self.inner.create(messages, **kwargs)
        ctx = current_run_context()
        if ctx is None or not isinstance(first.content, str) or kwargs.get("json_output"):
            return first
        # chat messages only: retrieved memories and tool events are not facts to restate
        conversation = [m for m in ctx.messages() if m.type in REPORT_TYPES]
        reports = run_reports(list(ctx.messages()))
        check = check_answer(first.content, ctx.task, reports, conversation)
        if check.passed:
            ctx.answer_checks.append(check)
            return first
        check.attempts = 2
        try:  # not streamed: the console shows the checked answer in place of the streamed one
            with no_token_sink():
                second: CreateResult | None = await self.inner.create(
                    [*messages, UserMessage(content=_feedback(check), source="checker")], **kwargs
                )
        except Exception as exc:  # the digest is always at hand: never fail the run here
            logger.warning("answer regeneration failed (%s); answering with the reports' digest", exc)
            second = None
        again = None
        if second is not None and isinstance(second.content, str):
            again = check_answer(second.content, ctx.task, reports, conversation)
        if second is not None and again is not None and again.passed:
            check.outcome = "regenerated"
            ctx.answer_checks.append(check)
            return second
        check.outcome = "digest"
        if again is not None:
            check.findings += [f"second try: {f}" for f in again.findings]
        ctx.answer_checks.append(check)
        spent = [r.usage for r in (first, second) if r is not None]
        usage = RequestUsage(
            prompt_tokens=sum(u.prompt_tokens for u in spent),
            completion_tokens=sum(u.completion_tokens for u in spent),
        )
        return CreateResult(finish_reason="stop", content=digest(reports), usage=usage, cached=False)
