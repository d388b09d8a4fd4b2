"""The README's optimizer bench figures are the committed results' (bench/results/optimizer*.json)."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _results() -> list[tuple[str, dict]]:
    res = ROOT / "bench/results"
    files = [res / "optimizer.json", *sorted(res.glob("optimizer-*/optimizer.json"))]
    return [(str(f.relative_to(ROOT)), json.loads(f.read_text())) for f in files if f.is_file()]


def test_readme_states_each_review_cycle_and_the_no_op_figures() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    results = _results()
    assert results, "bench/results/optimizer.json is missing"
    reviews = noops = 0
    for path, data in results:
        for agent, rv in data["raw"]["reviews"].items():
            reviews += 1
            line = (
                f"{agent} ({rv['model_before']}, {rv['heldout_cases']} held-out cases): "
                f"{rv['score_before']:.3f} → {rv['score_after']:.3f}"
            )
            assert line in readme and path in readme, line
            spent = rv["spent"]
            assert f"{spent['model_calls']} model calls ({spent['critic_calls']} critic)" in readme
        noop = data["raw"].get("noop")
        if noop:
            noops += 1
            ours = sum(noop["ours_promoted"])
            gepa = data["raw"]["gepa_false_rate_median"] * 20
            assert f"ours promoted {ours} of 20, GEPA-style {gepa:.1f} of 20" in readme
            assert ours <= 1  # the goal: at most 1 false promotion in 20
    assert reviews >= 1 and noops == 1
