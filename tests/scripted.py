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
