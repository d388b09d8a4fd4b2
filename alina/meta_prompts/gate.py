"""The promotion gate: a candidate prompt replaces the current one only on a real, held-out gain.

A small local model's answers vary from run to run; a candidate prompt that changes nothing
still beats the current one on a few cases about half the time. GEPA/MIPRO-style optimizers keep
a candidate on a strict improvement over a minibatch of ~3 cases (:func:`gepa_style`, kept here
as the anchor to compare with), so they promote many no-op candidates. :func:`decide` asks more:

* a **paired one-sided test** on the per-case held-out scores (current vs candidate on the same
  cases): the exact sign test on the non-tied pairs (``scipy.stats.binomtest``, p = P(X ≥ wins)
  under Binomial(n, ½)), or a paired bootstrap of the mean difference (numpy, fixed seed); and
* a **minimum mean gain** (``min_gain``), so a significant but negligible change is not worth a
  new prompt version.

The defaults are module constants (``ALPHA``, ``MIN_GAIN``, ``BOOTSTRAP_TRIALS``, ``SEED``), not
config keys. :func:`noisy_scores` is the run-to-run noise model the tests and
``bench/optimizer_gate.py`` simulate candidates with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import binomtest

__all__ = [
    "ALPHA",
    "BOOTSTRAP_TRIALS",
    "MIN_GAIN",
    "SEED",
    "GateDecision",
    "decide",
    "gepa_style",
    "noisy_scores",
]

ALPHA = 0.05
MIN_GAIN = 0.05
BOOTSTRAP_TRIALS = 2000
SEED = 13
GEPA_MINIBATCH = 3
Method = Literal["sign", "bootstrap", "gepa"]


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict; ``p_value`` is NaN for the GEPA-style rule (it runs no test)."""

    promote: bool
    p_value: float
    mean_gain: float
    method: Method
    reason: str


def _paired(current: Sequence[float], candidate: Sequence[float]) -> np.ndarray:
    cur, cand = np.asarray(current, dtype=float), np.asarray(candidate, dtype=float)
    if cur.shape != cand.shape or cur.ndim != 1:
        raise ValueError(f"paired scores need equal lengths, got {cur.shape} and {cand.shape}")
    if cur.size == 0:
        raise ValueError("no scores to compare")
    if not (np.isfinite(cur).all() and np.isfinite(cand).all()):
        raise ValueError("scores must be finite")
    return cand - cur


def sign_test_p(diffs: Sequence[float]) -> float:
    """Exact one-sided sign test: P(at least the observed wins) among the non-tied pairs under
    Binomial(n, ½); 1.0 when every pair is tied."""
    d = np.asarray(diffs, dtype=float)
    wins, n = int((d > 0).sum()), int((d != 0).sum())
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5, alternative="greater").pvalue)


def bootstrap_p(diffs: Sequence[float], trials: int = BOOTSTRAP_TRIALS, seed: int = SEED) -> float:
    """One-sided paired bootstrap: the share of ``trials`` resamples (with replacement) of the
    per-case differences whose mean is ≤ 0, with the +1 correction ((k + 1) / (trials + 1)), so
    it is never 0. Deterministic for a given ``seed``."""
    d = np.asarray(diffs, dtype=float)
    if not d.any():
        return 1.0
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(trials, d.size))].mean(axis=1)
    return float((np.count_nonzero(means <= 0) + 1) / (trials + 1))


def decide(
    current_scores: Sequence[float],
    candidate_scores: Sequence[float],
    *,
    alpha: float = ALPHA,
    min_gain: float = MIN_GAIN,
    method: Literal["sign", "bootstrap"] = "sign",
    trials: int = BOOTSTRAP_TRIALS,
    seed: int = SEED,
) -> GateDecision:
    """Promote the candidate only if its held-out scores beat the current ones significantly
    (one-sided p < ``alpha`` by ``method``) AND its mean gain is ≥ ``min_gain``.

    ``current_scores[i]`` and ``candidate_scores[i]`` are the two prompts' scores on the same
    case ``i``. Raises ``ValueError`` for unequal lengths, no scores or non-finite scores.
    """
    diffs = _paired(current_scores, candidate_scores)
    gain = float(diffs.mean())
    if method == "sign":
        p = sign_test_p(diffs.tolist())
    elif method == "bootstrap":
        p = bootstrap_p(diffs.tolist(), trials, seed)
    else:
        raise ValueError(f"unknown method {method!r} (sign | bootstrap)")
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    tally = f"{wins} better, {losses} worse, {diffs.size - wins - losses} tied of {diffs.size}"
    if not p < alpha:
        return GateDecision(False, p, gain, method, f"not significant: p={p:.4f} ≥ {alpha} ({tally})")
    if gain < min_gain:
        return GateDecision(
            False, p, gain, method, f"gain {gain:+.3f} below the minimum {min_gain} ({tally})"
        )
    return GateDecision(True, p, gain, method, f"promoted: p={p:.4f} < {alpha}, gain {gain:+.3f} ({tally})")


def gepa_style(
    current: Sequence[float],
    candidate: Sequence[float],
    minibatch: int = GEPA_MINIBATCH,
    rng: np.random.Generator | int | None = None,
) -> GateDecision:
    """The anchor rule of GEPA/MIPRO-style optimizers: sample ``minibatch`` cases (without
    replacement) and keep the candidate if its summed score there is strictly higher."""
    diffs = _paired(current, candidate)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    idx = gen.choice(diffs.size, size=min(minibatch, diffs.size), replace=False)
    gain = float(diffs[idx].sum())
    promote = gain > 0
    reason = f"minibatch of {idx.size}: summed gain {gain:+.3f}" + (" > 0" if promote else " ≤ 0")
    return GateDecision(promote, math.nan, float(diffs[idx].mean()), "gepa", reason)


def noisy_scores(means: Sequence[float], rng: np.random.Generator, parts: int = 5) -> np.ndarray:
    """One run's per-case scores under run-to-run noise: case ``i`` scores
    Binomial(``parts``, ``means[i]``) / ``parts`` — a score_case-like share of ``parts`` checks,
    each met with the case's own probability. Expected value = ``means`` (clipped to [0, 1])."""
    p = np.clip(np.asarray(means, dtype=float), 0.0, 1.0)
    return rng.binomial(parts, p) / parts
