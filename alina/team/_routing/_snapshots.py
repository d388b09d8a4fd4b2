"""Snapshots: a conversation as plain turns (from AutoGen messages or JSON), the agents'
profiles from their prompt files, and the selector prompt AutoGen is given."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)

from alina.team._routing._types import TURN_KINDS, AgentProfile, SnapshotError, Turn

# For small models: one line per candidate, then a few solved examples taken from the prompt
# files, then the request; the reply is grammar-constrained to the candidates' names.
_SELECTOR_SYSTEM = """You pick which team member handles the user's request.
{roles}

Examples:
{shots}"""
_SELECTOR_USER = "{done}Request: {task}\nAnswer:"
_SHOTS_PER_AGENT = 3


def turns_from_messages(messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> list[Turn]:
    """AutoGen's message thread as router turns (other events, e.g. streaming chunks, dropped)."""
    out: list[Turn] = []
    for m in messages:
        if isinstance(m, ToolCallRequestEvent):
            out.append(Turn(m.source, json.dumps([c.name for c in m.content]), "tool_call"))
        elif isinstance(m, ToolCallExecutionEvent):
            out.append(Turn(m.source, "\n".join(r.content for r in m.content), "tool_result"))
        elif isinstance(m, BaseChatMessage):
            out.append(Turn(m.source, m.to_text()))
    return out


def parse_snapshot(data: Any, names: Collection[str]) -> list[Turn]:
    """Validate a decoded JSON snapshot (a list of ``{"source", "content"[, "type"]}``) into
    turns; raise :class:`SnapshotError` quoting the offending item."""
    if not isinstance(data, list):
        raise SnapshotError(f"the snapshot must be a JSON list of messages (got {type(data).__name__})")
    if not data:
        raise SnapshotError("the snapshot is empty: give at least the user's message")
    allowed = ["user", *names]
    turns = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise SnapshotError(f"message {i}: must be an object with source and content (got {item!r:.60})")
        source, content, kind = item.get("source"), item.get("content"), item.get("type", "text")
        if source not in allowed:
            raise SnapshotError(f"message {i}: unknown source {source!r}; expected one of {allowed}")
        if not isinstance(content, str):
            raise SnapshotError(f"message {i}: content must be a string (got {content!r:.60})")
        if kind not in TURN_KINDS or (kind != "text" and source == "user"):
            raise SnapshotError(f"message {i}: type must be one of {list(TURN_KINDS)} (got {kind!r})")
        unknown = sorted(set(item) - {"source", "content", "type"})
        if unknown:
            raise SnapshotError(f"message {i}: unknown keys {unknown}")
        turns.append(Turn(source, content, kind))
    return turns


def profiles_from_prompts(prompts: Mapping[str, Any]) -> list[AgentProfile]:
    """Router profiles from loaded prompts (``name -> Prompt``)."""
    return [
        AgentProfile(
            name,
            p.description,
            tuple(p.keywords),
            tuple(p.examples),
            tuple(p.claims),
            reports=tuple(p.reports),
            scores_others=p.scores_others,
            side_effects=p.side_effects,
        )
        for name, p in prompts.items()
    ]


SELECTOR_PROMPT = """Choose who acts next.
{roles}

Conversation:
{history}

Reply with exactly one name from {participants}."""
"""AutoGen's own selector prompt, used only when the router has no model client."""
