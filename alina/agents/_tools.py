"""Skills as AutoGen tools: the one place a skill's function becomes a ``FunctionTool``.

The skills package knows plain functions, their schemas and the call guard
(:func:`alina.skills.loader.guarded`); wrapping them for AutoGen happens here, so a move to
another agent framework touches this adapter only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool

from alina.skills._contract import Skill
from alina.skills._schema import description_of, instrument
from alina.skills.builtin import BUILTIN_SKILLS
from alina.skills.loader import SkillLoader, default_loader, guarded
from alina.skills.recorder import ToolCallRecorder, call_scope

__all__ = ["SkillTool", "build_tool", "tools_for", "tools_for_agent"]


class SkillTool(FunctionTool):
    """A ``FunctionTool`` that tells the skill's guard which call it executes: AutoGen passes
    the id the model gave the call, which pairs a structured result with the stored call."""

    async def run_json(
        self, args: Mapping[str, Any], cancellation_token: CancellationToken, call_id: str | None = None
    ) -> Any:
        with call_scope(call_id):
            return await super().run_json(args, cancellation_token, call_id=call_id)


def build_tool(skill: Skill, agent: str, recorder: ToolCallRecorder | None = None) -> FunctionTool:
    """One AutoGen tool for ``agent``: the skill behind its guard (timeout, side-effect rules,
    recording, structured results kept by call id), timed into the metrics, described by its
    docstring."""
    return SkillTool(
        instrument(guarded(skill, agent, recorder), agent), description=skill.description, name=skill.name
    )


def tools_for(agent: str) -> list[FunctionTool]:
    """AutoGen tools for ``agent``'s built-in skills, unguarded (empty list for an agent without any)."""
    return [
        FunctionTool(instrument(f, agent), description=description_of(f), name=f.__name__)
        for f in BUILTIN_SKILLS.get(agent, [])
    ]


def tools_for_agent(agent: str, loader: SkillLoader | None = None) -> list[FunctionTool]:
    """AutoGen tools for every skill ``agent`` may use in ``loader`` (default: the process-wide
    loader), each recorded by the loader's recorder."""
    loader = loader or default_loader()
    return [build_tool(s, agent, loader.recorder) for s in loader.skills_for(agent)]
