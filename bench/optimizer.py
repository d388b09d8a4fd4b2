"""Optimizer: one review cycle per agent on the local models; no-op paraphrases, ours vs GEPA-style.

Two parts, one run, real local models (the agents on their configured model, the embedded
SmolLM2-135M; the critic on the largest assembled rung, Qwen2.5-Coder-1.5B), a throw-away
Postgres started here:

* **review cycle**: for each agent, :func:`alina.team.review.review_agent` once (critic
  rewrite + few-shot edits, the held-out gate, the ladder as configured): the held-out mean
  before and after, the promoted candidate's p-value (none when nothing passed), the model
  calls and wall time it spent.
* **no-op paraphrases**: 20 rewordings of one agent's prompt that change nothing it is asked to
  do (synonyms, sentence order) each run the held-out cases on the agent's model; every one the
  gate promotes over the prompt in use is a false promotion. Ours
  (:func:`~alina.meta_prompts.gate.decide`, sign test, alpha 0.05, min gain 0.05) and the
  GEPA-style anchor (keep on a strict improvement on a 3-case minibatch) judge the same scores.

Both parts cost minutes of CPU: ``ALINA_BENCH_AGENTS`` (comma list, default all four) picks the
reviewed agents, ``ALINA_BENCH_NOOP_AGENT`` (default trader; empty: skip that part) the
paraphrased one, ``ALINA_BENCH_HELDOUT`` caps the held-out cases per agent (default: all);
``ALINA__OPTIMIZER__*`` overrides the review's config as usual; ``--quick`` reviews the trader
only, with at most 2 few-shot candidates. ``--reps`` repeats the GEPA-style minibatch draws (the
model's outputs are deterministic at temperature 0).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np

from bench._harness import Goal, Result, median, progress

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".alina"
NO_OPS = 20

# Rewordings that keep the instruction's meaning; a paraphrase applies a subset of them.
SWAPS: list[tuple[str, str]] = [
    ("short", "brief"),
    ("Report", "Give"),
    ("Do not", "Never"),
    ("one or two", "one to two"),
    ("of the team", "in the team"),
    ("numbers", "figures"),
    ("Say", "State"),
    ("Use only", "Only use"),
]


def paraphrases(body: str, n: int = NO_OPS) -> list[str]:
    """``n`` distinct no-op rewordings of ``body``: the subsets of :data:`SWAPS` that apply, then
    those texts (and ``body``) with a closing courtesy ("Thanks." / "Thank you."), in a fixed order."""
    usable = [s for s in SWAPS if s[0] in body]
    out: list[str] = []
    for k in range(1, len(usable) + 1):
        for combo in itertools.combinations(usable, k):
            text = body
            for a, b in combo:
                text = text.replace(a, b)
            out.append(text)
    for closing in (" Thanks.", " Thank you."):
        out += [t + closing for t in [body, *out] if not t.endswith((" Thanks.", " Thank you."))]
    out = [t for t in dict.fromkeys(out) if t != body]
    if len(out) < n:
        raise ValueError(f"only {len(out)} paraphrases of the prompt, need {n}")
    return out[:n]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(
    dsn: str, agents: list[str], noop_agent: str, quick: bool, reps: int, heldout: int | None
) -> dict[str, Any]:
    from alina.config import load_config
    from alina.memory_store import RunStore
    from alina.memory_store.optimizer import OptimizerStore
    from alina.memory_store.prompts import PromptVersions
    from alina.meta_prompts import compose
    from alina.meta_prompts.evals import load_eval_set
    from alina.meta_prompts.gate import decide, gepa_style
    from alina.team.review import review_agent
    from alina.team.review._cases import Clients, _Meter, _scores

    async with RunStore(dsn):
        pass
    overrides: dict[str, Any] = {"cache.enabled": False}
    if heldout is not None:
        overrides["optimizer.heldout_cases"] = heldout
    if quick:
        overrides["optimizer.fewshot_candidates"] = 2
    cfg = load_config(overrides=overrides)  # ALINA__OPTIMIZER__* in the environment apply too
    versions, store = PromptVersions(dsn), OptimizerStore(dsn)
    clients = Clients(cfg)
    raw: dict[str, Any] = {"reviews": {}, "noop": {}, "optimizer_config": cfg.optimizer.model_dump()}
    try:
        for agent in agents:
            progress(f"review cycle: {agent}")

            def show(step: str, done: int, total: int, agent: str = agent) -> None:
                if done == total or done % 5 == 0:
                    progress(f"  {agent}: {step} {done}/{total}")

            rv = await review_agent(
                cfg, agent, versions=versions, store=store, clients=clients, progress=show
            )
            raw["reviews"][agent] = rv.to_json()
            progress(f"  {rv.message}")

        if not noop_agent:
            return raw
        progress(f"no-op paraphrases: {NO_OPS} of {noop_agent}'s prompt")
        current = await versions.active(noop_agent)
        cases = load_eval_set(noop_agent, "heldout")[: heldout or None]
        model = cfg.agents[noop_agent].model
        meter = _Meter()
        base, _ = await _scores(
            clients, cfg, noop_agent, model, current.system, cases, meter, None, "current"
        )
        progress(f"  current v{current.version}: scores {[round(x, 4) for x in base]}")
        cands = []
        for i, body in enumerate(paraphrases(current.body)):
            scores, _ = await _scores(
                clients,
                cfg,
                noop_agent,
                model,
                compose(body, current.protected),
                cases,
                meter,
                None,
                "paraphrase",
            )
            cands.append(scores)
            d = decide(base, scores, alpha=cfg.optimizer.alpha, min_gain=cfg.optimizer.min_gain)
            progress(
                f"  paraphrase {i + 1}/{NO_OPS}: mean {np.mean(scores):.3f} (current {np.mean(base):.3f}), "
                f"ours p={d.p_value:.4f} promote={d.promote}; scores {[round(x, 4) for x in scores]}"
            )
        spent = meter.close()
        ours = [decide(base, c, alpha=cfg.optimizer.alpha, min_gain=cfg.optimizer.min_gain) for c in cands]
        gepa_rates = []
        for rep in range(reps):
            rng = np.random.default_rng(rep)
            gepa_rates.append(sum(gepa_style(base, c, rng=rng).promote for c in cands) / NO_OPS)
        raw["noop"] = {
            "agent": noop_agent,
            "model": model,
            "cases": [c.id for c in cases],
            "current": base,
            "candidates": cands,
            "ours_promoted": [d.promote for d in ours],
            "ours_p": [d.p_value for d in ours],
            "gepa_rate_per_rep": gepa_rates,
            "changed_outputs": sum(c != base for c in cands),
            "model_calls": spent.model_calls,
            "wall_s": spent.wall_s,
            "errors": spent.errors,
        }
    finally:
        await clients.close()
    return raw


def run(reps: int, quick: bool) -> Result:
    from alina.runtime.services import PostgresService

    agents = [
        a for a in os.environ.get("ALINA_BENCH_AGENTS", "alina,trader,monitor,optimizer").split(",") if a
    ]
    if quick:
        agents = ["trader"]
    noop_agent = os.environ.get("ALINA_BENCH_NOOP_AGENT", "trader")  # "" skips the paraphrases
    heldout = int(os.environ["ALINA_BENCH_HELDOUT"]) if os.environ.get("ALINA_BENCH_HELDOUT") else None
    WORK.mkdir(exist_ok=True)
    pg = PostgresService(data_dir=WORK / f"bench-optimizer-pg-{os.getpid()}", port=_free_port())
    progress(f"starting Postgres ({pg.data_dir})")
    pg.start()
    try:
        raw = asyncio.run(_measure(pg.dsn, agents, noop_agent, quick, reps, heldout))
    finally:
        pg.stop()
        shutil.rmtree(pg.data_dir, ignore_errors=True)
    rows: list[list[Any]] = []
    for agent, rv in raw["reviews"].items():
        promoted = next((c for c in rv["candidates"] if c["status"] == "promoted"), None)
        kinds = ", ".join(f"{c['origin']}:{c['status']}" for c in rv["candidates"]) or "none"
        rows.append(
            [
                agent,
                rv["model_before"]
                + ("" if rv["model_after"] == rv["model_before"] else f" -> {rv['model_after']}"),
                rv["heldout_cases"],
                rv["score_before"],
                rv["score_after"],
                promoted["p_value"] if promoted else None,
                min((c["p_value"] for c in rv["candidates"] if c.get("p_value") is not None), default=None),
                kinds,
                rv["spent"]["model_calls"],
                rv["spent"]["critic_calls"],
                rv["spent"]["wall_s"],
                rv["spent"].get("errors", 0),
            ]
        )
    noop = raw["noop"]
    goals: list[Goal] = []
    notes = [
        "One review cycle per agent, on the real models; 'after' is the held-out mean of what is in use "
        "after the review (unchanged when nothing passed the gate).",
        "A specialist's tool is not run: the case's report stands for its output when the expected "
        "tool is called (alina.team.review.run_case).",
    ]
    if noop:  # ALINA_BENCH_NOOP_AGENT="" skips the paraphrases
        ours_rate = sum(noop["ours_promoted"]) / NO_OPS
        gepa_rate = median(noop["gepa_rate_per_rep"])
        raw = {**raw, "ours_false_rate": ours_rate, "gepa_false_rate_median": gepa_rate}
        rows.append(
            [
                f"no-op x{NO_OPS} ({noop['agent']})",
                noop["model"],
                len(noop["cases"]),
                None,
                None,
                None,
                min(noop["ours_p"]),
                f"ours promoted {sum(noop['ours_promoted'])}/{NO_OPS}; GEPA-style "
                f"{gepa_rate * NO_OPS:.1f}/{NO_OPS}",
                noop["model_calls"],
                0,
                noop["wall_s"],
                noop.get("errors", 0),
            ]
        )
        goals.append(Goal("false promotions of 20 no-op paraphrases, ours (rate)", ours_rate, 0.05, False))
        notes.append(
            f"No-op paraphrases: {noop['changed_outputs']} of {NO_OPS} changed at least one per-case score; "
            f"GEPA-style false-promotion rate {gepa_rate:.2f} (median over {reps} minibatch draws), "
            f"ours {ours_rate:.2f}."
        )
    return Result(
        name="optimizer",
        title="Optimizer: a review cycle per agent on the local models; no-op paraphrases vs GEPA-style",
        headers=[
            "agent",
            "model",
            "held-out n",
            "held-out before",
            "held-out after",
            "p (promoted)",
            "lowest p",
            "candidates",
            "model calls",
            "critic calls",
            "wall s",
            "failed calls",
        ],
        rows=rows,
        goals=goals,
        raw=raw,
        params={
            "agents": agents,
            "noop_agent": noop_agent,
            "heldout_cap": heldout,
            "quick": quick,
            "gepa_reps": reps,
            "no_op_candidates": NO_OPS,
            "alpha": 0.05,
            "min_gain": 0.05,
        },
        notes=notes,
    )
