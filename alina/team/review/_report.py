"""The review's records: budgets, candidate outcomes, an agent's review and the periodic report."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: called as a review works through its cases."""
Origin = Literal["critic", "fewshot", "model"]


class ReviewError(Exception):
    """A review cannot run (unknown agent, no evaluation set); the caller must act."""


# -- reports ---------------------------------------------------------------------------------


@dataclass
class Budget:
    model_calls: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    critic_calls: int = 0
    errors: int = 0
    """Agent calls that failed twice (scored as no output)."""

    def add(self, other: Budget) -> None:
        self.errors += other.errors
        self.model_calls += other.model_calls
        self.tokens += other.tokens
        self.wall_s += other.wall_s
        self.critic_calls += other.critic_calls


@dataclass
class CandidateOutcome:
    origin: Origin
    summary: str
    status: Literal["promoted", "rejected", "refused"]
    """promoted/rejected by the gate; refused before evaluation (guard or unparsable critic reply)."""
    reason: str
    version: int | None = None
    model: str | None = None
    digest: str | None = None
    p_value: float | None = None
    current_mean: float | None = None
    candidate_mean: float | None = None
    gain: float | None = None


@dataclass
class AgentReview:
    agent: str
    trigger: str
    status: Literal["done", "refused", "failed"]
    message: str
    model_before: str
    model_after: str
    version_before: int
    version_after: int
    heldout_cases: int = 0
    tune_cases: int = 0
    score_before: float | None = None
    """The prompt in use's held-out mean before the review."""
    score_after: float | None = None
    """The held-out mean of what is in use after it (the promoted candidate's, or unchanged)."""
    p_value: float | None = None
    """The promoted candidate's p-value (None: nothing promoted)."""
    candidates: list[CandidateOutcome] = field(default_factory=list)
    projected: Budget = field(default_factory=Budget)
    spent: Budget = field(default_factory=Budget)
    shrunk: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def promoted(self) -> CandidateOutcome | None:
        return next((c for c in self.candidates if c.status == "promoted"), None)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


@dataclass
class Rollback:
    agent: str
    version: int
    """The promoted version rolled back."""
    to_version: int
    new_version: int
    reason: str


@dataclass
class ReviewReport:
    reviews: list[AgentReview] = field(default_factory=list)
    rollbacks: list[Rollback] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Agents not reviewed and why (score fine, nothing queued)."""
    spent: Budget = field(default_factory=Budget)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
