"""Scripted model replies for team tests (AutoGen's ReplayChatCompletionClient).

One place for the model info such a client claims and for a scripted tool call, so every test
that drives the team without a real model scripts it the same way.
"""

from __future__ import annotations

from typing import Any

from autogen_core import FunctionCall
from autogen_core.models import CreateResult, ModelFamily, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

INFO = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": ModelFamily.UNKNOWN,
    "structured_output": True,
    "multiple_system_messages": True,
}


def call(name: str, args: str = "{}") -> CreateResult:
    """A model reply that calls tool ``name`` with ``args`` (10 prompt + 5 completion tokens)."""
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=f"c-{name}", name=name, arguments=args)],
        usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
        cached=False,
    )


def replay(*steps: Any) -> ReplayChatCompletionClient:
    """A client that answers with ``steps`` in order (text or :func:`call` results)."""
    return ReplayChatCompletionClient(list(steps), model_info=INFO)  # type: ignore[arg-type]


def degraded_health(monkeypatch: Any) -> None:
    """``system_health`` reports a degraded machine (memory and one agent's latency), whatever
    this machine's figures: a real tool call with a known structured result."""
    from alina.skills import builtin

    alerts = [("memory-high", "memory 95% > 90%"), ("latency-high", "trader p95 31.0s > 30s")]
    report = builtin.HealthReport(
        3.0, 400.0, 95.0, (0.5, 0.5, 0.5), 2, {}, "degraded", [r for _, r in alerts], alerts
    )
    monkeypatch.setattr(builtin, "health_report", lambda latency=None: report)
