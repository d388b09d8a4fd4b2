"""A review's plan, its projected cost, and shrinking it to fit ``optimizer.budget``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from alina.config import AlinaConfig
from alina.meta_prompts.evals import Case
from alina.team.review._report import Budget


@dataclass
class _Plan:
    tune: list[Case]
    heldout: list[Case]
    critic: bool
    fewshot: int
    ladder: list[str]
    """Models to try with the prompt in use (a rung up or down)."""
    projected: Budget
    shrunk: list[str]


def _est_tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 4)


def _project(
    config: AlinaConfig, agent: str, model: str, system: str, plan: _Plan, critic_model: str | None
) -> Budget:
    opt = config.optimizer
    cases = plan.tune + plan.heldout
    per_case = sum(_est_tokens(system + c.task + "".join(r.content for r in c.reports)) for c in cases)
    per_case = per_case // max(1, len(cases)) + (
        config.agents[agent].max_tokens or config.models[model].max_tokens
    )
    prompt_variants = 1 + int(plan.critic) + plan.fewshot
    agent_calls = opt.trials * (len(plan.tune) + len(plan.heldout) * (prompt_variants + len(plan.ladder)))
    critic_calls = int(plan.critic)
    critic_tokens = critic_calls * (_est_tokens(system) + 900 + opt.critic_max_tokens)

    def slowness(key: str) -> float:  # a model's expected call time scales with its timeout
        return (
            config.models[key].timeout_s / config.models["embedded"].timeout_s
            if "embedded" in config.models
            else 1.0
        )

    wall = (
        opt.trials
        * (len(plan.tune) + len(plan.heldout) * prompt_variants)
        * opt.budget.agent_call_s
        * slowness(model)
    )
    wall += sum(opt.trials * len(plan.heldout) * opt.budget.agent_call_s * slowness(k) for k in plan.ladder)
    wall += critic_calls * opt.budget.critic_call_s
    return Budget(
        agent_calls + critic_calls, agent_calls * per_case + critic_tokens, round(wall, 1), critic_calls
    )


def _over(config: AlinaConfig, b: Budget) -> list[str]:
    cap = config.optimizer.budget
    over = []
    if b.model_calls > cap.max_model_calls:
        over.append(f"{b.model_calls} model calls > optimizer.budget.max_model_calls {cap.max_model_calls}")
    if b.tokens > cap.max_tokens:
        over.append(f"{b.tokens} tokens > optimizer.budget.max_tokens {cap.max_tokens}")
    if b.wall_s > cap.max_wall_s:
        over.append(f"{b.wall_s:.0f} s > optimizer.budget.max_wall_s {cap.max_wall_s:.0f}")
    return over


def _fit(
    config: AlinaConfig, agent: str, model: str, system: str, plan: _Plan, critic_model: str | None
) -> list[str]:
    """Shrink ``plan`` until its projection fits the budget; the problems left (empty: fits)."""
    plan.projected = _project(config, agent, model, system, plan, critic_model)
    steps: list[tuple[str, Callable[[], bool]]] = []

    def fewer_fewshot() -> bool:
        if plan.fewshot == 0:
            return False
        plan.fewshot -= 1
        return True

    def no_ladder() -> bool:
        if not plan.ladder:
            return False
        plan.ladder = []
        return True

    def fewer_tune() -> bool:
        if len(plan.tune) <= 4:
            return False
        plan.tune = plan.tune[: max(4, len(plan.tune) // 2)]
        return True

    def no_critic() -> bool:
        if not plan.critic:
            return False
        plan.critic = False
        return True

    steps = [
        ("one few-shot candidate fewer", fewer_fewshot),
        ("no ladder step", no_ladder),
        ("half the tuning cases", fewer_tune),
        ("no critic rewrite", no_critic),
    ]
    for label, step in steps:
        while _over(config, plan.projected) and step():
            plan.shrunk.append(label)
            plan.projected = _project(config, agent, model, system, plan, critic_model)
    return _over(config, plan.projected)


# -- the review ------------------------------------------------------------------------------
