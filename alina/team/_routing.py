"""ALINA's speaker selection: rules, then lexical and semantic similarity, then the model only
when unsure.

The router reads a conversation (:class:`Turn` list: the user's messages and the agents'
turns) and names who acts next. In order, the first that applies decides:

1. **tool** — the last item is a tool call or tool result: it returns to the agent that made
   the call. (AutoGen runs a tool round inside the agent's turn, so inside the team this never
   fires; it keeps snapshots from other sources honest.)
2. **safe** — in safe mode an order-placing task never reaches the trader; its other steps
   still run and ALINA reports that placing orders is disabled.
3. **mention** — ``@agent`` in the latest user message (case-insensitive, plural tolerant)
   wins; several mentions speak in the order written.
4. **rules** — a plan from the latest user message: it is cut into clauses ("and", "then",
   commas, sentences; "after"/"before" reorder); a clause that matches an agent's ``claims``
   (cues in its prompt file: asking to change an agent's prompt, model or settings is the
   optimizer's; asking for the system's own figures — tokens, latency, error rates, caches,
   time spent — is the monitor's) goes to that agent alone, even when it names another agent;
   any other clause names its specialists by the keywords of their prompt files; the optimizer
   goes after whoever must first produce what it scores; ``if healthy``/``if it's a downtrend``
   makes the following steps depend on the monitor's or trader's report, and the agent whose
   report decides the condition is added first when the task does not ask for it.
5. **lexical** / **semantic** — a clause without keywords is scored against each agent's
   description and ``examples``: BM25 over word stems first, then, when that is not confident,
   the cosine similarity of sentence embeddings (MiniLM, :mod:`alina.team._similarity`); a
   confident best match joins the plan. Without the embedding model (not installed, failed to
   load: logged once) only the lexical score is used.
6. **follow_up** — a short or anaphoric follow-up ("and over the last week?", "again") reuses
   the specialists of the previous request.
7. **done** — every step of the plan has answered (or none is needed: greetings, thanks,
   concept questions, questions about ALINA's own answer): ALINA speaks, which ends the run.
8. **semantic** — a request nothing above decided goes to the specialist closest in meaning
   (embeddings of the latest user message against the specialists' descriptions and examples)
   when that match is confident.
9. **model** — nothing above is confident: ALINA's model picks among the likeliest agents
   (best semantic, else lexical, match first), grammar-constrained to an enum of their names
   (``json_output``), the reply matched case-insensitively; **fallback** — the model failed:
   the best guess of the similarity stage.

Every decision records method, confidence, candidates and a reason, and is counted in the
``alina_routing_*`` metrics. The logic works on plain :class:`Turn` values, so ``alina route``
and the team use the same code; only :func:`turns_from_messages` knows AutoGen's types.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)
from autogen_core.models import ChatCompletionClient, LLMMessage, SystemMessage, UserMessage
from pydantic import BaseModel, create_model

from alina.monitoring.routing_metrics import observe_routing_decision
from alina.team._similarity import SemanticScorer, shared_embedder

if TYPE_CHECKING:
    from alina.memory_store.embeddings import Embedder

log = logging.getLogger(__name__)

ORCHESTRATOR = "alina"
Mode = Literal["normal", "safe"]
MODES: tuple[Mode, ...] = ("normal", "safe")
Method = Literal[
    "tool", "safe", "mention", "rules", "semantic", "lexical", "follow_up", "done", "model", "fallback"
]
TurnKind = Literal["text", "tool_call", "tool_result"]
TURN_KINDS: tuple[TurnKind, ...] = ("text", "tool_call", "tool_result")

LEXICAL_THRESHOLD = 0.6
"""Below this confidence a clause's lexical match is not trusted (the model decides)."""
# The two semantic thresholds were chosen on the ``tune`` split of routing_set.jsonl ONLY (the
# held-out split was never scored while choosing them): a grid over 0.3-0.95 for both, scoring a
# snapshot left to the model at 0.2 (the 135M selector's accuracy on the tune snapshots it
# decided before this stage existed). Tune accuracy is flat at its best for a clause threshold
# of 0.85-0.9 (lower lets a loose likeness to ALINA's greeting examples swallow requests; 0.95
# drops good matches) and a decide threshold of 0.3-0.5; we took the middle of the first plateau
# and the top of the second, so the model still decides near-ties between specialists.
SEMANTIC_THRESHOLD = 0.875
"""Below this confidence a keyword-less clause's semantic match does not join the plan (a
confident lexical match is tried first)."""
SEMANTIC_DECIDE_THRESHOLD = 0.5
"""Below this confidence (softmax share among the specialists) the semantic best match for a
request nothing else decided is not trusted and the model chooses (candidates in semantic order)."""


class SnapshotError(ValueError):
    """A conversation snapshot is malformed; whoever supplied it must fix it (exit code 2)."""


@dataclass(frozen=True)
class Turn:
    """One item of a conversation: a user message, an agent's turn, or a tool call/result."""

    source: str
    content: str
    kind: TurnKind = "text"


@dataclass(frozen=True)
class AgentProfile:
    """What the router knows about an agent (from its prompt file)."""

    name: str
    description: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    claims: tuple[tuple[tuple[str, ...], ...], ...] = ()
    """Cues (groups of alternative words or phrases) for clauses this agent takes even when
    they name another agent; ``<agent>`` stands for any agent's name."""


AGENT_PLACEHOLDER = "<agent>"
"""In a claim, any agent's name."""


@dataclass(frozen=True)
class Skip:
    """A planned step the router dropped: ``agent`` was asked for only if ``on``'s report showed
    ``condition`` (a state of ``domain`` in :func:`report_states`; e.g. the trader only if the
    monitor's report is "healthy"), and it did not."""

    agent: str
    on: str
    domain: str
    condition: str


@dataclass(frozen=True)
class RouteDecision:
    speaker: str | None
    method: Method
    confidence: float
    candidates: tuple[str, ...]
    reason: str
    skipped: tuple[Skip, ...] = ()
    """Planned steps dropped because their condition did not hold (the memory graph records
    what caused it)."""


# --------------------------------------------------------------------------- text handling

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the is are was were be been being am do does did doing to of in on at for from by with and "
    "or but so it its this that these those i me my we our us you your what which who how when where "
    "why can could would should will shall may might must please pls just there here any some all "
    "has have had about into over as than too very also me them they their one now".split()
)


def stem(word: str) -> str:
    """A light suffix stripper: enough to match plurals and -ing/-ed forms of the same word."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def words(text: str) -> list[str]:
    """Lower-case word tokens (``BTC/USDT`` -> ``btc``, ``usdt``; ``trader's`` -> ``trader``)."""
    return _WORD.findall(text.lower().replace("'s ", " ").replace("’s ", " "))


def terms(text: str) -> list[str]:
    """Stemmed content words (stop words dropped): what the scorer compares."""
    return [stem(w) for w in words(text) if w not in _STOP]


class LexicalScorer:
    """BM25 between a query and each agent's description and examples (one document each).

    An agent's score is its best document's score, so one close example is enough; confidence
    is a softmax over the agents' scores, so it is high only when one agent clearly leads.
    """

    def __init__(
        self,
        profiles: Sequence[AgentProfile],
        *,
        k1: float = 1.2,
        b: float = 0.5,
        temperature: float = 1.0,
    ) -> None:
        self.k1, self.b, self.temperature = k1, b, temperature
        self.docs: list[tuple[str, Counter[str], int]] = []
        for p in profiles:
            for text in (p.description, *p.examples):
                t = terms(text)
                self.docs.append((p.name, Counter(t), len(t)))
        self.names = [p.name for p in profiles]
        n = len(self.docs)
        df: Counter[str] = Counter()
        for _, tf, _ in self.docs:
            df.update(tf.keys())
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.avgdl = sum(d[2] for d in self.docs) / max(1, n)

    def scores(self, text: str) -> dict[str, float]:
        """Each agent's best BM25 score for ``text`` (0 when no word is shared)."""
        return {name: s for name, (s, _) in self._best(text).items()}

    def _best(self, text: str) -> dict[str, tuple[float, float]]:
        """Per agent: best BM25 score and the share of the query's weight its best document covers."""
        query = set(terms(text))
        unseen = max(self.idf.values(), default=1.0)
        total = sum(self.idf.get(t, unseen) for t in query) or 1.0
        best = dict.fromkeys(self.names, (0.0, 0.0))
        for name, tf, dl in self.docs:
            s = covered = 0.0
            for t in query:
                f = tf.get(t, 0)
                if f:
                    norm = self.k1 * (1 - self.b + self.b * dl / self.avgdl)
                    s += self.idf[t] * f * (self.k1 + 1) / (f + norm)
                    covered += self.idf[t]
            if s > best[name][0]:
                best[name] = (s, covered / total)
        return best

    def rank(self, text: str) -> tuple[list[tuple[str, float]], float]:
        """Agents by score (best first) and the confidence of the first: its softmax share of
        the scores times the share of the query its best match explains (one shared word out
        of five is weak evidence)."""
        best = self._best(text)
        ranked = sorted(((n, s) for n, (s, _) in best.items()), key=lambda kv: -kv[1])
        top = ranked[0][1]
        if top <= 0:
            return ranked, 0.0
        exps = [math.exp(v / self.temperature) for _, v in ranked]
        return ranked, exps[0] / sum(exps) * best[ranked[0][0]][1]


# --------------------------------------------------------------------------- robust name matching

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)


def match_name(reply: str, names: Collection[str]) -> str | None:
    """The agent a model reply names: JSON ``{"speaker": ...}`` or free text, case-insensitive,
    tolerant of markdown, quotes, plurals/possessives and ``<think>`` blocks; the first name
    mentioned wins. ``None`` when no name appears."""
    text = _THINK.sub(" ", reply or "")
    try:
        data = json.loads(text.strip())
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, str)), None)
    if isinstance(data, str):
        text = data
    lowered = {n.lower(): n for n in names}
    plain = re.sub(r"[*`_#>\"'\[\](){}:]+", " ", text.lower()).strip()
    if plain in lowered:
        return lowered[plain]
    best: tuple[int, str] | None = None
    for low, name in lowered.items():
        variants = {low, low.replace("_", " ")}
        pattern = r"(?<![a-z0-9])(" + "|".join(map(re.escape, variants)) + r")(?:e?s)?(?![a-z0-9])"
        m = re.search(pattern, plain)
        if m and (best is None or m.start() < best[0]):
            best = (m.start(), name)
    return best[1] if best else None


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
REPORTERS: dict[str, str] = {"health": "monitor", "trend": "trader"}
"""Whose report speaks for each domain of :func:`report_states` (and of a task's conditions)."""
_PREDICATES: tuple[tuple[str, str, bool, re.Pattern[str]], ...] = (
    # (domain, agent whose report decides it, wanted value, words)
    (
        "health",
        REPORTERS["health"],
        False,
        re.compile(
            r"\b(unhealthy|degraded|not (?:healthy|ok|okay|fine)|overloaded|struggling|slow|down|broken"
            r"|bad)\b"
        ),
    ),
    (
        "health",
        REPORTERS["health"],
        True,
        re.compile(r"\b(healthy|ok|okay|fine|good|green|stable|normal|running)\b"),
    ),
    ("trend", REPORTERS["trend"], True, re.compile(r"\b(up ?trend|uptrend|rising|going up|bullish|up)\b")),
    (
        "trend",
        REPORTERS["trend"],
        False,
        re.compile(r"\b(down ?trend|downtrend|falling|dropping|going down|bearish|down)\b"),
    ),
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
_PRODUCERS = ("trader", "monitor")
_EVALUATOR = "optimizer"


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


def _condition_of(clause: str) -> tuple[Condition | None, str]:
    """A condition ("if healthy", "unless it's a downtrend") and the clause without it."""
    m = _CONDITION.search(clause)
    if not m:
        return None, clause
    body = m.group("body")
    for domain, agent, wanted, pattern in _PREDICATES:
        pm = pattern.search(body)
        if pm:
            negate = m.group(1).lower() == "unless"
            cond = Condition(domain, agent, wanted != negate)
            rest = clause[: m.start()] + " " + body[pm.end() :]
            return cond, rest.strip()
    return None, clause


_REPORT_STATES: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    "health": (
        ("degraded", re.compile(r"\b(degraded|unhealthy|not healthy|critical)\b")),
        ("healthy", re.compile(r"\bhealthy\b")),
    ),
    "trend": (
        ("downtrend", re.compile(r"\b(downtrend|down ?trend|bearish|falling)\b")),
        ("uptrend", re.compile(r"\b(uptrend|up ?trend|bullish|rising)\b")),
        ("sideways", re.compile(r"\bsideways\b")),
    ),
}


def report_states(text: str, domain: str) -> list[str]:
    """The states a text names for ``domain``, strongest first: ``"health"`` -> degraded,
    healthy; ``"trend"`` -> downtrend, uptrend, sideways. Words read for one state are not read
    again for a later one ("not healthy" is degraded only). The router reads a condition from
    the first; the memory graph calls a text with more than one ambiguous."""
    rest = text.lower()
    found = []
    for state, pattern in _REPORT_STATES[domain]:
        rest, n = pattern.subn(" ", rest)
        if n:
            found.append(state)
    return found


def _report_value(turns: Sequence[Turn], cond: Condition) -> bool | None:
    """Whether the latest report of the condition's agent shows the wanted state (None: no report)."""
    for t in reversed(turns):
        if t.source == "user":
            return None
        if t.source != cond.agent or t.kind != "text":
            continue
        states = report_states(t.content, cond.domain)
        if not states:
            return None
        if states[0] in ("degraded", "downtrend"):
            return not cond.wanted
        if states[0] in ("healthy", "uptrend"):
            return cond.wanted
        return False  # sideways: neither up nor down holds
    return None


# --------------------------------------------------------------------------- the router

# For small models: one line per candidate, then a few solved examples taken from the prompt
# files, then the request; the reply is grammar-constrained to the candidates' names.
_SELECTOR_SYSTEM = """You pick which team member handles the user's request.
{roles}

Examples:
{shots}"""
_SELECTOR_USER = "{done}Request: {task}\nAnswer:"
_SHOTS_PER_AGENT = 3


class Router:
    """Decides the next speaker from the conversation so far (see the module docstring)."""

    def __init__(
        self,
        profiles: Sequence[AgentProfile],
        *,
        client: ChatCompletionClient | None = None,
        mode: Mode = "normal",
        lexical_threshold: float = LEXICAL_THRESHOLD,
        embedder: Embedder | None | Literal["default"] = "default",
        semantic_threshold: float = SEMANTIC_THRESHOLD,
        semantic_decide_threshold: float = SEMANTIC_DECIDE_THRESHOLD,
    ) -> None:
        """``embedder`` drives the semantic stage: ``"default"`` is the process-wide MiniLM
        (loaded on first need; blocked where real model requests are), ``None`` turns the
        stage off (lexical only), anything else with ``embed`` (and optionally ``embed_sync``)
        is used as given (tests pass a deterministic fake)."""
        names = [p.name for p in profiles]
        if ORCHESTRATOR not in names:
            raise ValueError(f"the router needs a profile for {ORCHESTRATOR!r} (got {names})")
        self.profiles = {p.name: p for p in profiles}
        self.client = client
        self.mode: Mode = mode
        self.lexical_threshold = lexical_threshold
        self.semantic_threshold = semantic_threshold
        self.semantic_decide_threshold = semantic_decide_threshold
        self.scorer = LexicalScorer(list(profiles))
        self.semantic = SemanticScorer(
            list(profiles), shared_embedder() if embedder == "default" else embedder
        )
        self.decisions: list[RouteDecision] = []
        self._keywords = {p.name: {stem(k) for k in (*p.keywords, p.name)} for p in profiles}
        self._claims = {p.name: [self._compile(c, names) for c in p.claims] for p in profiles if p.claims}

    @staticmethod
    def _compile(claim: Sequence[Sequence[str]], names: Sequence[str]) -> list[list[tuple[str, ...]]]:
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

    @property
    def specialists(self) -> list[str]:
        return [n for n in self.profiles if n != ORCHESTRATOR]

    @property
    def names(self) -> list[str]:
        return list(self.profiles)

    def set_mode(self, mode: str) -> None:
        """Switch between ``normal`` and ``safe`` (no order reaches the trader)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)} (got {mode!r})")
        self.mode = mode  # type: ignore[assignment]

    # -- analysis ------------------------------------------------------------------------
    def _hits(self, clause: str) -> dict[str, int]:
        """Position of each agent's first keyword in the clause."""
        first: dict[str, int] = {}
        for pos, w in enumerate(words(clause)):
            s = stem(w)
            for name, kws in self._keywords.items():
                if name not in first and (w in kws or s in kws):
                    first[name] = pos
        return first

    def claimant(self, clause: str) -> str | None:
        """The agent whose claim the clause matches (a word or phrase of each of the claim's
        groups), or None. When several match, the claim that starts first in the clause wins
        (the request leads: "tune the trader so it uses fewer tokens" asks for a change, "the
        error rate since we switched models" for a figure); then the claim with more groups;
        then the agents' order."""
        stems = [stem(w) for w in words(clause)]
        best: tuple[tuple[int, int, int], str] | None = None
        for order, (name, claims) in enumerate(self._claims.items()):
            for groups in claims:
                starts = [_find(stems, phrases) for phrases in groups]
                if None in starts:
                    continue
                key = (min(p for p in starts if p is not None), -len(groups), order)
                if best is None or key < best[0]:
                    best = (key, name)
        return best[1] if best else None

    def plan(self, task: str, history: Sequence[Turn] = ()) -> Plan:
        """The steps the task needs, in order; ``history`` (turns before the task) tells the
        optimizer whether what it must score already exists."""
        plan = Plan()
        plan.order_intent = bool(_ORDER_INTENT.search(task)) and not _ADVICE.search(task)
        if _META.search(task) or (_CONCEPT.search(task) and not _DATA_CUE.search(task)):
            plan.direct = True
            return plan
        reported = {t.source for t in history if t.kind == "text"}
        head, colon, rest = task.partition(":")
        if colon and rest.strip() and _EVALUATOR in self._hits(head):
            task = head + ": (the text to evaluate)"  # what follows is material, not requests
        condition: Condition | None = None
        greeting_only = True
        plan.weak_direct = False
        for raw in _clauses(task):
            if _OTHERWISE.match(raw) and condition is not None:
                condition = condition.negated()
                raw = _OTHERWISE.sub("", raw)
            cond, clause = _condition_of(raw)
            if cond is not None:
                condition = cond
                if not any(s.agent == cond.agent for s in plan.steps):
                    plan.steps.append(Step(cond.agent, "rules", 0.9))  # its report decides
            material = bool(_QUOTED.search(clause) or _INLINE.search(clause))
            scan = _INLINE.sub("", _QUOTED.sub(" ", clause))
            owner = self.claimant(scan)
            if owner is not None:
                # Another agent named here is what the clause is about, not who should act.
                if owner != ORCHESTRATOR:
                    greeting_only = False
                    plan.steps.append(Step(owner, "rules", 0.9, condition))
                continue
            hits = self._hits(scan)
            specialists = sorted((n for n in hits if n != ORCHESTRATOR), key=hits.__getitem__)
            if specialists:
                greeting_only = False
                planned = reported | {s.agent for s in plan.steps}
                for agent in self._order_in_clause(specialists, scan, material, planned):
                    plan.steps.append(Step(agent, "rules", 0.9, condition))
                continue
            if ORCHESTRATOR in hits or not terms(scan):
                continue  # greeting, thanks, a bare connective, or the condition alone
            best, conf, how = self._similar(scan)
            if how is not None and best != ORCHESTRATOR:
                greeting_only = False
                plan.steps.append(Step(best, how, round(conf, 3), condition))
            elif how is not None:
                plan.weak_direct = True  # only a resemblance to ALINA's examples
                continue
            else:
                greeting_only = False
                plan.unknown.append(clause)
        plan.direct = greeting_only and not plan.steps and not plan.unknown
        if self.mode == "safe" and plan.order_intent and any(s.agent == "trader" for s in plan.steps):
            plan.steps = [s for s in plan.steps if s.agent != "trader"]
            plan.dropped_for_safety = True
        # A turn handles its whole request: consecutive asks of one agent are one step.
        merged: list[Step] = []
        for s in plan.steps:
            if merged and merged[-1].agent == s.agent and merged[-1].condition == s.condition:
                continue
            merged.append(s)
        plan.steps = merged
        return plan

    def _similar(self, clause: str) -> tuple[str, float, Literal["semantic", "lexical"] | None]:
        """The agent a keyword-less clause is most like: a confident lexical (BM25) match first
        (exact word overlap with an example is the stronger evidence), else a confident semantic
        match; ``None`` as the method when neither is confident (the clause stays unknown)."""
        ranked, conf = self.scorer.rank(clause)
        if conf >= self.lexical_threshold:
            return ranked[0][0], conf, "lexical"
        sem = self.semantic.rank(clause)
        if sem is not None and sem[1] >= self.semantic_threshold:
            return sem[0][0][0], sem[1], "semantic"
        return ranked[0][0], conf, None

    def _order_in_clause(
        self, agents: list[str], clause: str, material: bool, reported: set[str]
    ) -> list[str]:
        """Order within one clause: the optimizer scores what the others produce, unless the
        thing to score is given (quoted, after a colon), already in the conversation, or a prompt."""
        if _EVALUATOR not in agents or len(agents) == 1:
            return agents
        others = [a for a in agents if a != _EVALUATOR]
        producers = [a for a in others if a in _PRODUCERS and a not in reported]
        named = {w for w in words(clause)} & set(others)  # "the trader's prompt": a topic
        if material or _PROMPT_NOUN.search(clause) or not _OUTPUT_NOUN.search(clause) or named:
            return [_EVALUATOR]
        return [*producers, _EVALUATOR]

    # -- decision ------------------------------------------------------------------------
    def decide(self, turns: Sequence[Turn]) -> RouteDecision:
        """The next speaker without any model call; ``speaker=None`` means the model should
        choose among ``candidates``. Pure: nothing is recorded."""
        if not turns:
            return RouteDecision(ORCHESTRATOR, "done", 1.0, (ORCHESTRATOR,), "empty conversation")
        last = turns[-1]
        if last.kind != "text" and last.source in self.profiles:
            return RouteDecision(
                last.source, "tool", 1.0, (last.source,), f"a {last.kind} returns to {last.source}"
            )
        users = [i for i, t in enumerate(turns) if t.source == "user" and t.kind == "text"]
        if not users:
            return RouteDecision(ORCHESTRATOR, "done", 1.0, (ORCHESTRATOR,), "no user message")
        at = users[-1]
        task = turns[at].content
        after = [t for t in turns[at + 1 :] if t.kind == "text"]
        spoken = [t.source for t in after if t.source in self.specialists]
        plan = self.plan(task, turns[:at])

        mentioned = self._mentions(task)
        if mentioned:
            if ORCHESTRATOR in mentioned and len(mentioned) == 1:
                return RouteDecision(ORCHESTRATOR, "mention", 1.0, (ORCHESTRATOR,), "@alina in the task")
            steps = [Step(a, "rules", 1.0) for a in mentioned if a != ORCHESTRATOR]
            if self.mode == "safe" and plan.order_intent and any(s.agent == "trader" for s in steps):
                steps = [s for s in steps if s.agent != "trader"]
                plan.dropped_for_safety = True
            return self._next(steps, spoken, turns, "mention", plan)

        if plan.steps:
            return self._next(plan.steps, spoken, turns, None, plan)
        if plan.dropped_for_safety:
            return self._safe_stop()
        if spoken:
            return RouteDecision(
                ORCHESTRATOR, "done", 0.9, (ORCHESTRATOR,), "the specialist asked has answered"
            )
        previous = self._previous_specialists(turns, users)
        follow_up = bool(previous) and (_FOLLOW_UP.search(task) is not None or len(terms(task)) <= 3)
        if plan.direct and not (plan.weak_direct and follow_up):
            return RouteDecision(
                ORCHESTRATOR, "done", 0.8, (ORCHESTRATOR,), "no specialist needed: ALINA answers"
            )
        if follow_up:
            return self._next([Step(a, "follow_up", 0.75) for a in previous], spoken, turns, None, plan)
        ranked, conf = self.scorer.rank(task)
        # The request is neither a greeting nor answered by a rule: a specialist is wanted. The
        # semantic stage picks among the specialists only (ALINA's examples are greetings and
        # questions about her answers, which the plan has already ruled out); when it is not
        # confident, the model chooses.
        open_specialists = [n for n in self.specialists if n not in spoken]
        sem = self.semantic.rank(task, among=open_specialists)
        if sem is not None and sem[1] >= self.semantic_decide_threshold:
            return RouteDecision(
                sem[0][0][0], "semantic", round(sem[1], 3), tuple(n for n, _ in sem[0]),
                "closest in meaning to the agent's description and examples",
            )  # fmt: skip
        # ALINA is a model candidate only when the request reads most like her examples (small
        # models pick "alina" for almost anything when offered). Listed best match first
        # (semantic when the embedder is at hand, else lexical): a small model leans to the first
        # option, so the order carries the evidence; a larger model reads past it.
        score = dict(sem[0] if sem is not None else ranked)
        candidates = tuple(sorted(open_specialists, key=lambda n: -score[n]))
        if ranked[0][0] == ORCHESTRATOR and ranked[0][1] > 0:
            candidates = (ORCHESTRATOR, *candidates)
        if sem is not None:
            conf = sem[1]
        if len(candidates) == 1:
            how: Method = "lexical" if sem is None else "semantic"
            return RouteDecision(candidates[0], how, round(conf, 3), candidates, "the only candidate")
        return RouteDecision(
            None, "model", round(conf, 3), candidates,
            f"no confident rule or match for {plan.unknown[0] if plan.unknown else task!r:.80}",
        )  # fmt: skip

    def _safe_stop(self) -> RouteDecision:
        return RouteDecision(
            ORCHESTRATOR, "safe", 1.0, (ORCHESTRATOR,),
            "safe mode: placing orders is disabled, ALINA reports it instead of the trader",
        )  # fmt: skip

    def _mentions(self, task: str) -> list[str]:
        found: list[str] = []
        lowered = {n.lower(): n for n in self.profiles}
        for raw in _MENTION.findall(task):
            low = raw.lower()
            name = lowered.get(low) or lowered.get(low[:-1] if low.endswith("s") else low)
            if name and name not in found:
                found.append(name)
        return found

    def _previous_specialists(self, turns: Sequence[Turn], users: list[int]) -> list[str]:
        if len(users) < 2:
            return []
        seen: list[str] = []
        for t in turns[users[-2] + 1 : users[-1]]:
            if t.source in self.specialists and t.kind == "text" and t.source not in seen:
                seen.append(t.source)
        return seen

    def _next(
        self, steps: list[Step], spoken: list[str], turns: Sequence[Turn], method: Method | None, plan: Plan
    ) -> RouteDecision:
        pending = list(steps)
        skipped: list[Skip] = []
        for who in spoken:
            idx = next((i for i, s in enumerate(pending) if s.agent == who), None)
            if idx is not None:
                pending.pop(idx)
        while pending:
            step = pending[0]
            if step.condition is not None and _report_value(turns, step.condition) is False:
                cond = step.condition
                skipped.append(Skip(step.agent, cond.agent, cond.domain, cond.describe()))
                pending.pop(0)
                continue
            break
        if pending:
            step = pending[0]
            m: Method = method or step.method
            reason = {
                "mention": f"@{step.agent} in the task",
                "rules": "task keywords",
                "semantic": "closest in meaning to the agent's description and examples",
                "lexical": "closest to the agent's description and examples",
                "follow_up": "follow-up: the previous request's specialist",
            }.get(m, m)
            if step.condition is not None:
                reason += f" (condition on the {step.condition.agent}'s report holds)"
            if skipped:
                reason += f"; condition not met: skipped {', '.join(k.agent for k in skipped)}"
            return RouteDecision(
                step.agent, m, 1.0 if m == "mention" else step.confidence,
                tuple(dict.fromkeys(s.agent for s in pending)), reason, tuple(skipped),
            )  # fmt: skip
        if plan.dropped_for_safety:
            return self._safe_stop()
        reason = "every needed specialist has answered"
        if skipped:
            reason = f"condition not met: skipped {', '.join(k.agent for k in skipped)}"
        return RouteDecision(ORCHESTRATOR, "done", 0.9, (ORCHESTRATOR,), reason, tuple(skipped))

    # -- the model step ------------------------------------------------------------------
    async def route(self, turns: Sequence[Turn]) -> RouteDecision:
        """Decide (rules and lexical first); ask the model only when they are not confident.
        Records the decision (``decisions`` and the metrics). Embeddings the semantic stage
        needs are computed first, off the event loop, then the decision is taken with them."""
        with self.semantic.deferred():
            d = self.decide(turns)
        if self.semantic.missing:
            await self.semantic.prepare()
            with self.semantic.deferred():  # never embed on the event loop
                d = self.decide(turns)
            self.semantic.missing.clear()  # still missing: the embedder failed or is blocked
        if d.speaker is None and self.client is not None:
            d = await self._ask_model(turns, d)
        return self._record(d)

    async def _ask_model(self, turns: Sequence[Turn], pending: RouteDecision) -> RouteDecision:
        from alina.models import ModelError, RealModelCallBlocked

        assert self.client is not None
        candidates = list(pending.candidates)
        users = [i for i, t in enumerate(turns) if t.source == "user"]
        task = turns[users[-1]].content if users else ""
        done = [t.source for t in turns[users[-1] + 1 :]] if users else []
        roles = "\n".join(f"{n}: {self.profiles[n].description}" for n in candidates)
        shots = "\n".join(
            f"Request: {ex}\nAnswer: {n}"
            for n in candidates
            for ex in self.profiles[n].examples[:_SHOTS_PER_AGENT]
        )
        messages: list[LLMMessage] = [
            SystemMessage(content=_SELECTOR_SYSTEM.format(roles=roles, shots=shots)),
            UserMessage(
                content=_SELECTOR_USER.format(
                    task=task[:600],
                    done=f"Already answered: {', '.join(dict.fromkeys(done))}.\n" if done else "",
                ),
                source="user",
            ),
        ]
        speaker_type: Any = Literal[tuple(candidates)]  # an enum of the candidates' names
        choice: type[BaseModel] = create_model("RouteChoice", speaker=(speaker_type, ...))
        try:
            result = await self.client.create(
                messages, json_output=choice, extra_create_args={"max_tokens": 24}
            )
        except RealModelCallBlocked:
            raise
        except ModelError as exc:
            log.warning("router model call failed (%s): falling back to the best similarity match", exc)
            return RouteDecision(
                candidates[0], "fallback", pending.confidence, tuple(candidates),
                f"model failed ({type(exc).__name__}): best similarity match",
            )  # fmt: skip
        reply = result.content if isinstance(result.content, str) else ""
        name = match_name(reply, candidates)
        if name is None:
            return RouteDecision(
                candidates[0], "fallback", pending.confidence, tuple(candidates),
                f"model named no candidate ({reply[:60]!r}): best similarity match",
            )  # fmt: skip
        return RouteDecision(name, "model", 0.5, tuple(candidates), pending.reason + "; the model chose")

    def _record(self, d: RouteDecision) -> RouteDecision:
        self.decisions.append(d)
        observe_routing_decision(d.method, d.confidence)
        return d

    # -- the two hooks SelectorGroupChat calls ---------------------------------------------
    async def selector_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> str | None:
        """AutoGen's ``selector_func``: a name, or None (no router model: AutoGen's selector
        then chooses among :meth:`candidate_func`'s list)."""
        return (await self.route(turns_from_messages(messages))).speaker

    def candidate_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> list[str]:
        """Only consulted when ``selector_func`` returned None: the model picks among these."""
        last = self.decisions[-1] if self.decisions else None
        return list(last.candidates) if last and last.candidates else self.specialists


def turns_from_messages(messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> list[Turn]:
    """AutoGen's message thread as router turns (other events, e.g. streaming chunks, dropped)."""
    out: list[Turn] = []
    for m in messages:
        if isinstance(m, ToolCallRequestEvent):
            out.append(Turn(m.source, json.dumps([c.name for c in m.content]), "tool_call"))
        elif isinstance(m, ToolCallExecutionEvent):
            out.append(Turn(m.source, "\n".join(r.content for r in m.content), "tool_result"))
        elif isinstance(m, BaseChatMessage):
            out.append(Turn(m.source, m.to_text()))
    return out


def parse_snapshot(data: Any, names: Collection[str]) -> list[Turn]:
    """Validate a decoded JSON snapshot (a list of ``{"source", "content"[, "type"]}``) into
    turns; raise :class:`SnapshotError` quoting the offending item."""
    if not isinstance(data, list):
        raise SnapshotError(f"the snapshot must be a JSON list of messages (got {type(data).__name__})")
    if not data:
        raise SnapshotError("the snapshot is empty: give at least the user's message")
    allowed = ["user", *names]
    turns = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise SnapshotError(f"message {i}: must be an object with source and content (got {item!r:.60})")
        source, content, kind = item.get("source"), item.get("content"), item.get("type", "text")
        if source not in allowed:
            raise SnapshotError(f"message {i}: unknown source {source!r}; expected one of {allowed}")
        if not isinstance(content, str):
            raise SnapshotError(f"message {i}: content must be a string (got {content!r:.60})")
        if kind not in TURN_KINDS or (kind != "text" and source == "user"):
            raise SnapshotError(f"message {i}: type must be one of {list(TURN_KINDS)} (got {kind!r})")
        unknown = sorted(set(item) - {"source", "content", "type"})
        if unknown:
            raise SnapshotError(f"message {i}: unknown keys {unknown}")
        turns.append(Turn(source, content, kind))
    return turns


def profiles_from_prompts(prompts: Mapping[str, Any]) -> list[AgentProfile]:
    """Router profiles from loaded prompts (``name -> Prompt``)."""
    return [
        AgentProfile(name, p.description, tuple(p.keywords), tuple(p.examples), tuple(p.claims))
        for name, p in prompts.items()
    ]


SELECTOR_PROMPT = """Choose who acts next.
{roles}

Conversation:
{history}

Reply with exactly one name from {participants}."""
"""AutoGen's own selector prompt, used only when the router has no model client."""
