"""The ``optimizer:`` section of ``config.yaml``: the critic loop and its budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from alina.settings._base import StrictModel as _Strict

__all__ = ["OptimizerBudgetConfig", "OptimizerConfig"]


class OptimizerBudgetConfig(_Strict):
    """Caps on one review of one agent, projected before it starts (a review over a cap is
    shrunk, then refused with the figures)."""

    max_model_calls: int = Field(400, ge=1, le=1_000_000)
    """Model calls one review may make."""
    max_tokens: int = Field(400_000, ge=1, le=1_000_000_000)
    """Tokens one review may spend."""
    max_wall_s: float = Field(1800.0, gt=0, le=86400)
    """Expected wall time one review may take."""
    agent_call_s: float = Field(3.0, gt=0, le=3600)
    """Expected seconds per agent model call (used for the projection)."""
    critic_call_s: float = Field(90.0, gt=0, le=3600)
    """Expected seconds per critic call (the larger model writes a whole prompt)."""


class OptimizerConfig(_Strict):
    """The critic loop (``alina optimize review``; README "Optimizer")."""

    threshold: float = Field(0.7, ge=0.0, le=1.0)
    """An evaluation score below this queues a review of its agent; agents whose rolling score is
    below it are reviewed by the periodic review."""
    rolling_window: int = Field(20, ge=1, le=10000)
    """The rolling score is the mean of an agent's last this-many evaluation scores."""
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    """The gate: a candidate is promoted only if the one-sided paired test on the held-out cases
    is significant at this level..."""
    min_gain: float = Field(0.05, ge=0.0, le=1.0)
    """...and its mean held-out gain is at least this."""
    trials: int = Field(1, ge=1, le=20)
    """Repetitions of each held-out case per prompt (per-case scores are their mean; different
    seeds, so only useful at temperature > 0)."""
    method: Literal["sign", "bootstrap"] = "sign"
    """The gate's test: sign (exact sign test) or bootstrap (paired bootstrap)."""
    max_rewrites: int = Field(3, ge=1, le=100)
    """Rejected candidates (since the last promotion or model switch) before the next rung is tried."""
    critic: str | None = None
    """Key under models: of the critic; null = the largest local rung that is assembled."""
    critic_max_tokens: int = Field(600, ge=64, le=8192)
    """Tokens the critic may write per call."""
    fewshot_candidates: int = Field(2, ge=0, le=10)
    """Candidates made by adding or swapping few-shot examples from the tuning part."""
    fewshot_examples: int = Field(2, ge=1, le=8)
    """Examples per few-shot candidate."""
    tune_cases: int | None = Field(None, ge=1)
    """At most this many tuning cases are run to find failures (null = all)."""
    heldout_cases: int | None = Field(None, ge=1)
    """At most this many held-out cases decide (null = all; fewer = less power)."""
    watch_runs: int = Field(10, ge=1, le=10000)
    """A promoted version is watched live over its first this-many runs (see ``rollback_margin``)."""
    rollback_margin: float = Field(0.05, ge=0.0, le=1.0)
    """A promoted version whose live mean over its first ``watch_runs`` runs is below its parent's
    by more than this is rolled back automatically."""
    budget: OptimizerBudgetConfig = Field(default_factory=OptimizerBudgetConfig)
