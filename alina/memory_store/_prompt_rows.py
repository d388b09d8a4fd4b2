"""The rows of ``prompt_history`` as Python values: :class:`PromptVersion`, its source and status
words, the columns read, :class:`PromptVersionError` and :func:`unified_diff` of two system texts.

Used by :class:`~alina.memory_store.prompts.PromptVersions`, which re-exports the public names.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

__all__ = ["PromptVersion", "PromptVersionError", "Source", "Status", "unified_diff"]

Source = Literal["file", "candidate", "rollback"]
Status = Literal["active", "candidate", "rejected", "promoted", "rolled_back"]

_COLUMNS = (
    "agent, version, parent_version, system, digest, protected_hash, source, status, scores, p_value, "
    "reason, diff, created_at, decided_at, activated"
)


class PromptVersionError(ValueError):
    """An unknown agent or version, or a transition that is not allowed (the caller must act)."""


@dataclass(frozen=True)
class PromptVersion:
    """One stored version of an agent's system prompt."""

    agent: str
    version: int
    parent_version: int | None
    system: str
    digest: str
    protected_hash: str
    source: Source
    status: Status
    scores: dict[str, Any]
    p_value: float | None
    reason: str | None
    diff: str | None
    created_at: datetime
    decided_at: datetime | None
    activated: int | None
    in_use: bool = False
    """True for the version the agent runs with now."""


def unified_diff(a: str, b: str, *, from_name: str, to_name: str) -> str:
    """The ``difflib`` unified diff of two system texts ('' when they are equal)."""
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), fromfile=from_name, tofile=to_name
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
