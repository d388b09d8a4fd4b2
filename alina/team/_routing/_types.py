"""The router's vocabulary: turns, agent profiles, decisions, modes and thresholds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from alina.meta_prompts import REPORT_DOMAINS

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
    reports: tuple[str, ...] = ()
    """Report domains (:data:`REPORT_DOMAINS`) this agent's report decides."""
    scores_others: bool = False
    """It scores what the others produce (it speaks after the reporting agents)."""
    side_effects: bool = False
    """It acts on the world: in safe mode an order task never reaches it."""


class _Reporting(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def reports(self) -> tuple[str, ...]: ...


def reporters_of(agents: Iterable[_Reporting]) -> dict[str, str]:
    """Report domain -> the agent whose report decides it, from the agents' ``reports`` (their
    prompt files or router profiles). ValueError for an unknown domain or two agents claiming one."""
    out: dict[str, str] = {}
    for a in agents:
        for domain in a.reports:
            if domain not in REPORT_DOMAINS:
                known = ", ".join(REPORT_DOMAINS)
                raise ValueError(f"{a.name}: reports on {domain!r}, which is not a report domain ({known})")
            if domain in out and out[domain] != a.name:
                raise ValueError(
                    f"both {out[domain]} and {a.name} report on {domain!r}: one agent decides a domain"
                )
            out[domain] = a.name
    return out


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
