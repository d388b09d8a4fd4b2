from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.base import Response
from autogen_core.memory import Memory
from autogen_core.model_context import BufferedChatCompletionContext, ChatCompletionContext
from autogen_core.models import ChatCompletionClient
from autogen_core.tools import BaseTool

from alina.agents._gate import ToolGateClient
from alina.agents._memory import RetrievalContext, as_agent_memory
from alina.agents._tools import tools_for_agent
from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.memory_store.vector import VectorMemory
from alina.meta_prompts import Prompt, load_prompt
from alina.monitoring.metrics import observe_agent_invocation
from alina.skills.loader import default_loader


@dataclass(frozen=True)
class AgentSpec:
    """What the router and the team need to know about one agent."""

    name: str
    prompt: Prompt
    tool_names: tuple[str, ...]

    @property
    def description(self) -> str:
        return self.prompt.description

    @property
    def prompt_version(self) -> str:
        """``v{version}-{digest}`` of the prompt file: what namespaces the agent's cached responses."""
        return f"v{self.prompt.version}-{self.prompt.digest}"


def agent_specs(config: AlinaConfig) -> dict[str, AgentSpec]:
    """Specs of ALINA and every specialist, in a fixed order (ALINA first)."""
    specs = {}
    for name in (ORCHESTRATOR, *SPECIALISTS):
        prompt = load_prompt(config.agents[name].prompt or name)
        # Names only: the declared skills, without building (and instrumenting) the tools twice.
        skills = default_loader().skills_for(name) if name in SPECIALISTS else []
        specs[name] = AgentSpec(name, prompt, tuple(s.name for s in skills))
    return specs


class TimedAssistantAgent(AssistantAgent):
    """An AssistantAgent whose every invocation (one turn: its model calls and tool calls) is
    recorded in ``gen_ai_invoke_agent_duration_seconds`` (error_type: the exception's class
    name, ``cancelled`` when the run stopped it mid-turn)."""

    def __init__(self, *args: Any, request_model: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_model = request_model

    async def on_messages_stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        t0, recorded = time.perf_counter(), False

        def record(error: str) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                observe_agent_invocation(self.name, self.request_model, time.perf_counter() - t0, error)

        try:
            async for item in super().on_messages_stream(*args, **kwargs):
                if isinstance(item, Response):  # the turn is done (callers may stop reading here)
                    record("")
                yield item
        except Exception as exc:
            record(type(exc).__name__)
            raise
        finally:
            record("cancelled")  # stopped before its response (a no-op once recorded)


def build_agent(
    name: str,
    config: AlinaConfig,
    client: ChatCompletionClient,
    *,
    tools: list[BaseTool] | None = None,
    prompt: Prompt | None = None,
    memory: Sequence[Memory | VectorMemory] | None = None,
    stream: bool = False,
) -> AssistantAgent:
    """One AutoGen AssistantAgent with its versioned prompt, tools and a windowed context.

    Specialists call a tool first (the provider's ``tool_policy``); with
    ``agents.NAME.reflect_on_tool_use`` a second model call rewrites the result in prose,
    otherwise the turn is the tool result itself. The context window keeps the system
    prompt plus the last ``team.history_window`` messages, so prompts stay short on a CPU.

    With ``memory`` (e.g. ``[vector_memory.for_agent(name)]``) AutoGen asks each memory before
    every model call; the context is then a :class:`RetrievalContext`, whose retrieved block
    comes after the stable prefix (system prompt, history) and is replaced, not appended, each
    call, so nothing retrieved accumulates in the agent's history or saved state.

    ``stream``: text turns are streamed (``create_stream``, see ``alina.models._stream``).
    """
    prompt = prompt or load_prompt(config.agents[name].prompt or name)
    agent_tools: list[BaseTool] = (
        list(tools) if tools is not None else (list(tools_for_agent(name)) if name in SPECIALISTS else [])
    )
    side_effect_tools = (
        frozenset(s.name for s in default_loader().skills_for(name) if s.side_effects)
        if name in SPECIALISTS
        else frozenset()
    )
    if side_effect_tools & {t.name for t in agent_tools}:
        client = ToolGateClient(client, side_effect_tools)
    window = config.team.history_window
    context: ChatCompletionContext = (
        RetrievalContext(buffer_size=window) if memory else BufferedChatCompletionContext(buffer_size=window)
    )
    return TimedAssistantAgent(
        name,
        request_model=config.model_for(name).model if name in config.agents else "",
        model_client=client,
        tools=list(agent_tools) or None,
        description=prompt.description,
        system_message=prompt.render(),
        reflect_on_tool_use=bool(agent_tools) and config.agents[name].reflect_on_tool_use,
        tool_call_summary_format="{result}",
        max_tool_iterations=1,
        model_context=context,
        memory=[as_agent_memory(m) for m in memory] if memory else None,
        model_client_stream=stream,
    )
