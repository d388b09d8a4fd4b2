"""Clause plans: a task cut into clauses, their conditions ("if healthy") and the cue words
that mark an order, advice, a follow-up or a question ALINA answers herself."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from alina.team._routing._lexical import stem, words
from alina.team._routing._types import AGENT_PLACEHOLDER

# --------------------------------------------------------------------------- task analysis

_SPLIT = re.compile(
    r"(?:[.;!?]+(?:\s+|$)|\n+|,\s*|\s+-+\s+|\s+—\s+|\s+(?:and|then|also|plus|afterwards|"
    r"after that|as well as|while you're at it)\s+|:\s+(?=(?-i:[a-z])))",
    re.I,
)
_LEAD = re.compile(r"^(?:and|then|also|plus|so|ok|okay|first|second|third|finally|next|lastly)\b[\s,]*", re.I)
_QUOTED = re.compile(r"\"[^\"]{3,}\"|“[^”]{3,}”|'[^']{3,}'|‘[^’]{3,}’|`[^`]+`")
_INLINE = re.compile(r":\s*(.{8,})$", re.S)
_MENTION = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
_CONDITION = re.compile(r"\b(only if|if|unless|provided|in case)\b(?P<body>[^,;.]*)", re.I)
_OTHERWISE = re.compile(r"^\s*(?:otherwise|else|if not)\b", re.I)
_PREDICATES: tuple[tuple[str, bool, re.Pattern[str]], ...] = (
    # (report domain, wanted value, words); the agent whose report decides a domain is named by
    # ``reports:`` in its prompt file
    (
        "health",
        False,
        re.compile(
            r"\b(unhealthy|degraded|not (?:healthy|ok|okay|fine)|overloaded|struggling|slow|down|broken"
            r"|bad)\b"
        ),
    ),
    ("health", True, re.compile(r"\b(healthy|ok|okay|fine|good|green|stable|normal|running)\b")),
    ("trend", True, re.compile(r"\b(up ?trend|uptrend|rising|going up|bullish|up)\b")),
    ("trend", False, re.compile(r"\b(down ?trend|downtrend|falling|dropping|going down|bearish|down)\b")),
)
_ORDER_INTENT = re.compile(
    r"\b(?:buy|sell|purchase|short|dump)\b(?!\s+(?:signal|pressure|side|volume|wall)s?\b)"
    r"|\b(?:place|put|submit|execute|open|close|cancel|enter|exit)\b[\w\s/.,-]{0,40}?\b"
    r"(?:order|orders|position|positions|trade|trades|long|short)\b"
    r"|\bgo (?:long|short)\b|\b(?:market|limit|stop)[- ](?:buy|sell|order)s?\b",
    re.I,
)
_ADVICE = re.compile(
    r"\b(?:should|would|could|shall)\s+(?:i|we|you)\s+(?:\w+\s+)?(?:buy|sell|short|go|enter|exit)\b"
    r"|\bis (?:it|this|now) (?:a )?(?:good|bad|right|wise)\b|\bwhen to (?:buy|sell)\b|\bbuy or sell\b",
    re.I,
)
_META = re.compile(
    r"\bwhy did you\b|\bwhat did you mean\b|\bwhat do you mean\b|\bexplain (?:your|that|this|the last) "
    r"(?:answer|reply|conclusion)\b|\b(?:say|put|write) (?:that|it) (?:again |differently |shorter |in )"
    r"|\bin (?:one|a single|two) sentences?\b|\brephrase\b|\bin other words\b"
    r"|\b(?:make|say|put|write) (?:it|that|this|your answer) (?:shorter|simpler|clearer)\b",
    re.I,
)
_CONCEPT = re.compile(
    r"^\s*(?:(?:what is|what's|what are)\s+(?:an?|the meaning of|meant by)\b|what does .+ mean\b"
    r"|explain (?:what|how|the concept|the term|the idea)\b|define\b|definition of\b)",
    re.I,
)
_DATA_CUE = re.compile(
    r"\b(?:our|we|us|my|current|currently|now|today|latest|last|recent|yesterday|this (?:week|morning)|"
    r"btc|eth|sol|bitcoin|ether|usdt|system|machine|server|box|agents?)\b",
    re.I,
)
_FOLLOW_UP = re.compile(
    r"^\s*(?:and|also|what about|how about|same|again|now|then|ok(?:ay)?,? (?:and|then|now))\b"
    r"|\b(?:again|same|still|too|as well|instead|the other)\b",
    re.I,
)
_OUTPUT_NOUN = re.compile(
    r"\b(?:summary|summaries|report|reports|answer|answers|result|results|output|response|responses|"
    r"analysis|overview|update|reply|it|that|this)\b",
    re.I,
)
_PROMPT_NOUN = re.compile(r"\b(?:prompts?|instructions?|system message|evaluation set|rubric)\b", re.I)


@dataclass(frozen=True)
class Condition:
    domain: str
    agent: str
    wanted: bool

    def negated(self) -> Condition:
        return Condition(self.domain, self.agent, not self.wanted)

    def describe(self) -> str:
        """The state the condition asks for, in the words of :func:`report_states`."""
        if self.domain == "health":
            return "healthy" if self.wanted else "degraded"
        return "uptrend" if self.wanted else "downtrend"


@dataclass(frozen=True)
class Step:
    agent: str
    method: Literal["rules", "semantic", "lexical", "follow_up"]
    confidence: float
    condition: Condition | None = None


@dataclass
class Plan:
    """What the latest user message asks for."""

    steps: list[Step] = field(default_factory=list)
    direct: bool = False
    """True when ALINA answers herself (greeting, thanks, concept, question about her answer)."""
    unknown: list[str] = field(default_factory=list)
    """Clauses nobody matched confidently."""
    order_intent: bool = False
    dropped_for_safety: bool = False
    weak_direct: bool = False
    """``direct`` rests on a lexical match only (a follow-up reading takes precedence)."""


def _find(stems: Sequence[str], phrases: Sequence[tuple[str, ...]]) -> int | None:
    """The first position in ``stems`` where one of ``phrases`` (stemmed words) starts, or None."""
    for i in range(len(stems)):
        for phrase in phrases:
            if tuple(stems[i : i + len(phrase)]) == phrase:
                return i
    return None


def _clauses(task: str) -> list[str]:
    """Clauses in the order the task needs them ("A after B" -> B, A; "before B, A" -> A, B)."""
    parts = [p.strip() for p in _SPLIT.split(task) if p and p.strip()]
    parts = [_LEAD.sub("", p).strip() for p in parts]
    parts = [p for p in parts if p]
    ordered: list[str] = []
    pending_before: list[str] = []
    for p in parts:
        low = p.lower()
        if low.startswith("after ") and ordered and not low.startswith("after that"):
            ordered.insert(len(ordered) - 1, p[6:])  # "A after B": B goes first
            continue
        if low.startswith("after "):
            ordered.append(p[6:])
            continue
        if low.startswith("before ") and not ordered:
            pending_before.append(p[7:])  # "Before B, A": A first
            continue
        if re.search(r"\s+after\s+", p, re.I):
            a, b = re.split(r"\s+after\s+", p, maxsplit=1, flags=re.I)
            ordered += [b, a]
            continue
        if re.search(r"\s+before\s+", p, re.I):
            a, b = re.split(r"\s+before\s+", p, maxsplit=1, flags=re.I)
            ordered += [a, b]
            continue
        ordered.append(p)
        if pending_before:
            ordered += pending_before
            pending_before = []
    return ordered + pending_before


def _condition_of(clause: str, reporters: Mapping[str, str]) -> tuple[Condition | None, str]:
    """A condition ("if healthy", "unless it's a downtrend") and the clause without it; only a
    domain some agent reports on (``reporters``: domain -> agent) can be a condition."""
    m = _CONDITION.search(clause)
    if not m:
        return None, clause
    body = m.group("body")
    for domain, wanted, pattern in _PREDICATES:
        agent = reporters.get(domain)
        pm = pattern.search(body)
        if agent is not None and pm:
            negate = m.group(1).lower() == "unless"
            cond = Condition(domain, agent, wanted != negate)
            rest = clause[: m.start()] + " " + body[pm.end() :]
            return cond, rest.strip()
    return None, clause


def compile_claim(claim: Sequence[Sequence[str]], names: Sequence[str]) -> list[list[tuple[str, ...]]]:
    """A claim's groups as stemmed phrases (``<agent>`` expanded to every agent's name)."""
    groups = []
    for group in claim:
        phrases: list[tuple[str, ...]] = []
        for alt in group:
            for text in names if alt == AGENT_PLACEHOLDER else (alt,):
                t = tuple(stem(w) for w in words(text))
                if t:
                    phrases.append(t)
        groups.append(phrases)
    return groups


def order_in_clause(
    agents: list[str],
    clause: str,
    material: bool,
    reported: set[str],
    *,
    scorers: Collection[str],
    producers: Sequence[str],
) -> list[str]:
    """Order within one clause: an agent that scores the others' output (``scorers``) speaks
    after the ``producers`` it would score, unless the thing to score is given (quoted, after a
    colon), already in the conversation, or a prompt."""
    scorer = next((a for a in agents if a in scorers), None)
    if scorer is None or len(agents) == 1:
        return agents
    others = [a for a in agents if a != scorer]
    waiting = [a for a in others if a in producers and a not in reported]
    named = {w for w in words(clause)} & set(others)  # "the trader's prompt": a topic
    if material or _PROMPT_NOUN.search(clause) or not _OUTPUT_NOUN.search(clause) or named:
        return [scorer]
    return [*waiting, scorer]
