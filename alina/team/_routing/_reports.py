"""Report states: what a specialist's report says about health or trend, and whether a
planned step's condition holds."""

from __future__ import annotations

import re
from collections.abc import Sequence

from alina.team._routing._plans import Condition
from alina.team._routing._types import Turn

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


def report_value(turns: Sequence[Turn], cond: Condition) -> bool | None:
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
