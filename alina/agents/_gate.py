"""Side-effect tools leave an agent's tool grammar whenever the run may not use them.

The model only ever sees (and, grammar-constrained, can only name) the tools it may call now:
in safe or halt mode, or in a run whose user request asks for no order, the skills that declare
side effects are removed from every model call. The tool wrapper refuses them too
(:func:`alina.skills.loader.side_effect_refusal`), so a model that names one anyway, or a
scripted client, still changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from autogen_core.models import ChatCompletionClient, CreateResult, LLMMessage
from autogen_core.tools import Tool, ToolSchema

from alina.models import WrappedClient
from alina.skills.context import current_run_context

__all__ = ["ToolGateClient", "side_effects_allowed"]


def side_effects_allowed() -> bool:
    """Whether the current run may call side-effect skills (outside a run: yes; the skills'
    own checks apply there)."""
    ctx = current_run_context()
    if ctx is None:
        return True
    return ctx.side_effect_refusal() is None and ctx.mandate.allows_side_effects


def _name(tool: Tool | ToolSchema | Mapping[str, Any]) -> str:
    return str(tool["name"] if isinstance(tool, Mapping) else tool.name)


class ToolGateClient(WrappedClient):
    """Wraps an agent's model client and drops ``side_effect_tools`` from each call's tools while
    ``allowed()`` is false. Everything else is passed through unchanged."""

    def __init__(
        self,
        inner: ChatCompletionClient,
        side_effect_tools: frozenset[str],
        allowed: Callable[[], bool] = side_effects_allowed,
    ) -> None:
        super().__init__(inner)
        self.side_effect_tools = side_effect_tools
        self.allowed = allowed

    def _gate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        tools = kwargs.get("tools")
        if tools and not self.allowed():
            kwargs = {**kwargs, "tools": [t for t in tools if _name(t) not in self.side_effect_tools]}
        return kwargs

    async def create(self, messages: Sequence[LLMMessage], **kwargs: Any) -> CreateResult:
        return await self.inner.create(messages, **self._gate(kwargs))

    def create_stream(
        self, messages: Sequence[LLMMessage], **kwargs: Any
    ) -> AsyncGenerator[str | CreateResult, None]:
        return self.inner.create_stream(messages, **self._gate(kwargs))
