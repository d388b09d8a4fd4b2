"""Agent factories: ALINA's final-answer agent and the specialists (trader, monitor, optimizer).

An agent is its prompt (``alina/meta_prompts/prompts/NAME.yaml``), its tools (``alina.skills``)
and its model client (``alina.models``). AutoGen specifics stay in this package and ``team/``.
"""

from alina.agents._factory import AgentSpec, agent_specs, build_agent
from alina.agents._memory import AgentMemory, RetrievalContext, as_agent_memory, memory_content, query_text
from alina.agents._tools import build_tool, tools_for, tools_for_agent

__all__ = [
    "AgentMemory",
    "AgentSpec",
    "RetrievalContext",
    "agent_specs",
    "as_agent_memory",
    "build_agent",
    "build_tool",
    "memory_content",
    "query_text",
    "tools_for",
    "tools_for_agent",
]
