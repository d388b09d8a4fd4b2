"""Optimizer gate: false promotions of no-op prompt candidates and power on real gains, ours vs GEPA-style.

Simulated per-case held-out scores (no model): each case has its own expected score
(Beta(2, 2)); one run's score on it is Binomial(5, p) / 5 (:func:`alina.meta_prompts.gate.noisy_scores`,
the run-to-run noise of a small local model scoring a share of five checks). Per trial, the
current prompt is run once; then

* **false promotions**: 20 no-op candidates (the same per-case expectations, re-drawn) go to each
  rule; the rate is promotions / candidates, and we count trials in which a rule promoted more
  than 1 of the 20;
* **power**: one candidate whose per-case expectations are higher by +0.1 or +0.2 (clipped to 1).

Rules side by side in the same trials: ours (:func:`~alina.meta_prompts.gate.decide`, sign test
and bootstrap, alpha 0.05, min gain 0.05) and the anchor, GEPA-style keep-on-a-strict-minibatch-
improvement (3 cases). n = the size of ALINA's held-out split, and 40 (a larger held-out set).
Each repetition is an independent batch of trials (its own seed); figures are medians over reps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench._harness import Goal, Result, median, progress

NO_OPS = 20
GAINS = (0.1, 0.2)
RULES = ("sign", "bootstrap", "gepa")


def _promotes(rule: str, current: np.ndarray, candidate: np.ndarray, rng: np.random.Generator) -> bool:
    from alina.meta_prompts.gate import decide, gepa_style

    if rule == "gepa":
        return gepa_style(current, candidate, rng=rng).promote
    return decide(current, candidate, method=rule).promote  # type: ignore[arg-type]


def _batch(n: int, trials: int, seed: int) -> dict[str, Any]:
    """One repetition: ``trials`` trials on ``n`` cases; rates per rule."""
    from alina.meta_prompts.gate import noisy_scores

    rng = np.random.default_rng(seed)
    false = dict.fromkeys(RULES, 0)
    over_one = dict.fromkeys(RULES, 0)
    true = {(r, g): 0 for r in RULES for g in GAINS}
    for _ in range(trials):
        means = rng.beta(2, 2, size=n)
        current = noisy_scores(means, rng)
        counts = dict.fromkeys(RULES, 0)
        for _ in range(NO_OPS):
            candidate = noisy_scores(means, rng)
            for rule in RULES:
                counts[rule] += _promotes(rule, current, candidate, rng)
        for rule in RULES:
            false[rule] += counts[rule]
            over_one[rule] += counts[rule] > 1
        for gain in GAINS:
            candidate = noisy_scores(means + gain, rng)
            for rule in RULES:
                true[rule, gain] += _promotes(rule, current, candidate, rng)
    return {
        "false_rate": {r: false[r] / (trials * NO_OPS) for r in RULES},
        "trials_over_1_of_20": {r: over_one[r] / trials for r in RULES},
        "power": {f"{r}@+{g}": true[r, g] / trials for r in RULES for g in GAINS},
    }


def run(reps: int, quick: bool) -> Result:
    from alina.meta_prompts.evals import load_eval_set

    trials = 40 if quick else 200
    sizes = [len(load_eval_set("alina", "heldout")), 40]
    raw: dict[str, Any] = {"per_rep": {}}
    rows: list[list[Any]] = []
    goals: list[Goal] = []
    for n in sizes:
        per_rep = []
        for rep in range(reps):
            progress(f"n={n}: rep {rep + 1}/{reps}, {trials} trials × {NO_OPS} no-op candidates")
            per_rep.append(_batch(n, trials, seed=1000 * n + rep))
        raw["per_rep"][str(n)] = per_rep
        med = {
            key: {k: median([r[key][k] for r in per_rep]) for k in per_rep[0][key]}
            for key in ("false_rate", "trials_over_1_of_20", "power")
        }
        for rule in RULES:
            label = {
                "sign": "ours (sign test)",
                "bootstrap": "ours (bootstrap)",
                "gepa": "GEPA-style (anchor)",
            }
            rows.append(
                [
                    n,
                    label[rule],
                    med["false_rate"][rule],
                    med["trials_over_1_of_20"][rule],
                    *(med["power"][f"{rule}@+{g}"] for g in GAINS),
                ]
            )
        goals.append(Goal(f"n={n}: false promotions, ours (sign)", med["false_rate"]["sign"], 0.05, False))
        goals.append(
            Goal(f"n={n}: false promotions, ours (bootstrap)", med["false_rate"]["bootstrap"], 0.05, False)
        )
    return Result(
        name="optimizer_gate",
        title="Optimizer gate: false promotions of no-op candidates and power, ours vs GEPA-style",
        headers=[
            "held-out n",
            "rule",
            "false promotion rate",
            "trials with >1 of 20 promoted",
            "power +0.1",
            "power +0.2",
        ],
        rows=rows,
        goals=goals,
        raw=raw,
        params={
            "reps": reps,
            "trials": trials,
            "no_op_candidates": NO_OPS,
            "alpha": 0.05,
            "min_gain": 0.05,
            "gepa_minibatch": 3,
            "case_means": "Beta(2,2)",
            "run_noise": "Binomial(5,p)/5",
        },
        notes=[
            "Simulated scores, no model: the figures are about the decision rules, not a prompt.",
            "A no-op candidate's expected per-case scores equal the current prompt's; every promotion "
            "of one is false.",
        ],
    )
