"""Shared helpers: a scripted model call + tool call that fill the series the deploy files use,
and the metric names a PromQL expression references."""

from __future__ import annotations

import re

from alina.config import AlertsConfig
from alina.models._governor import Governor
from alina.monitoring.metrics import (
    REGISTRY,
    observe_agent_invocation,
    observe_evaluation,
    observe_model_call,
    observe_paper,
    observe_retry,
)
from alina.monitoring.observer import Observer
from alina.runtime.modes import MODE, MODES
from alina.skills.builtin import instrument

SECRET = "sk-proj-Zq8XvT3mLw9KpR2sYb7NcJ4hGf6DaE1u"

_PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "le",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names referenced by ``expr``: identifiers that are not functions, keywords, label
    matchers (inside ``{}``), grouping labels (``by (...)``), ranges or strings."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"(?<![A-Za-z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?", "", s)  # numbers, 1e6 included
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        rest = s[m.end() :].lstrip()
        if rest.startswith("(") or m.group() in _PROMQL_WORDS:
            continue
        names.add(m.group())
    return names


def registry_sample_names() -> set[str]:
    """Every sample name (``x_total``, ``x_bucket``...) the REGISTRY exports right now."""
    return {s.name for fam in REGISTRY.collect() for s in fam.samples}


def lookup_price(symbol: str, api_key: str) -> str:
    """Look a symbol up.

    Args:
        symbol: the symbol
        api_key: a credential (must never become a label)
    """
    return f"{symbol}: 1.0"


def always_fail(symbol: str) -> str:
    """Always fails.

    Args:
        symbol: the symbol
    """
    return "error: no such symbol"


async def scripted_calls(agent: str = "trader") -> None:
    """Model calls (one ok, one timeout, one answered by the fallback) through a governor slot,
    two tool calls through the real instrumentation (one with a key in its arguments, one
    failing), an evaluation, an agent turn, a retry, a paper account's figures, the observer's
    rule and action series and the mode."""
    gov = Governor(limit=2, name="scripted")
    async with gov.slot("chat"):
        observe_model_call(agent, "llamacpp", "smollm2-135m-instruct-q4_1", 0.3, 120, 30)
    async with gov.slot("chat"):
        observe_model_call(agent, "llamacpp", "smollm2-135m-instruct-q4_1", 31.0, outcome="timeout")
    async with gov.slot("chat"):  # answered by the fallback model
        observe_model_call(agent, "llamacpp", "qwen15", 2.0, 100, 20, outcome="fallback")
    instrument(lookup_price, agent)("BTC/USDT", api_key=SECRET)
    instrument(always_fail, agent)("nope")
    observe_evaluation("answer_check", agent, 0.8, "passed")
    observe_agent_invocation(agent, "smollm2-135m-instruct-q4_1", 0.4)
    observe_retry(agent, "timeout")
    observe_paper("paper:scripted", {"equity": 9_900.0, "start_equity": 10_000.0, "total_pnl": -100.0})
    Observer(AlertsConfig())  # alina_alerts_firing{rule} at 0 and the action counters at 0
    for m in MODES:  # as SystemMode._export does: 1 for the current mode
        MODE.labels(mode=m).set(1.0 if m == "normal" else 0.0)
