"""Agent factories: ALINA's final-answer agent and the specialists (trader, monitor, optimizer).

An agent is its prompt (``alina/meta_prompts/prompts/NAME.yaml``), its tools (``alina.skills``)
and its model client (``alina.models``). AutoGen specifics stay in this package and ``team/``.
"""

from alina.agents._factory import AgentSpec, agent_specs, build_agent

__all__ = ["AgentSpec", "agent_specs", "build_agent"]
