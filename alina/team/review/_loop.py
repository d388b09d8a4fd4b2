"""The review of one agent, the rollback check, and the periodic review of all agents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from autogen_core.models import ChatCompletionClient

from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.meta_prompts._prompts import Prompt, system_digest
from alina.meta_prompts.evals import load_eval_set, score_parts
from alina.meta_prompts.gate import decide
from alina.team.review._budget import _fit, _Plan
from alina.team.review._candidates import Candidate, candidate_from_reply, fewshot_candidates
from alina.team.review._cases import Clients, _mean, _Meter, _scores
from alina.team.review._ladder import default_critic, ladder_of
from alina.team.review._parse import (
    CriticOutputError,
    _critic_template,
    _CriticSchema,
    critic_messages,
    parse_critic,
)
from alina.team.review._report import (
    AgentReview,
    Budget,
    CandidateOutcome,
    Progress,
    ReviewError,
    ReviewReport,
    Rollback,
)


async def review_agent(
    config: AlinaConfig,
    agent: str,
    *,
    trigger: str = "manual",
    versions: Any = None,
    store: Any = None,
    clients: Clients | Mapping[str, ChatCompletionClient] | None = None,
    progress: Progress | None = None,
) -> AgentReview:
    """One review of ``agent`` (see the module docstring). ``versions``: a ``PromptVersions``;
    ``store``: an ``OptimizerStore`` (both default to the configured Postgres); ``clients``:
    model clients by key under ``models:`` (default: built from config). Raises
    :class:`ReviewError` for an agent without an evaluation set."""
    from alina.memory_store.optimizer import OptimizerStore
    from alina.memory_store.prompts import PromptVersions

    versions = versions or PromptVersions.from_config(config)
    store = store or OptimizerStore.from_config(config)
    pool = clients if isinstance(clients, Clients) else Clients(config, clients)
    opt = config.optimizer
    if agent not in (ORCHESTRATOR, *SPECIALISTS):
        raise ReviewError(f"unknown agent {agent!r}; known: {', '.join((ORCHESTRATOR, *SPECIALISTS))}")
    try:
        cases = load_eval_set(agent)
    except ValueError as exc:
        raise ReviewError(str(exc)) from exc
    current: Prompt = await versions.active(agent)
    choice = (await store.model_choices()).get(agent)
    model = (
        choice.model if choice is not None and choice.model in config.models else config.agents[agent].model
    )
    review = AgentReview(agent, trigger, "done", "", model, model, current.version, current.version)
    if (why := pool.available(model)) is not None:
        review.status, review.message = "failed", f"{agent}'s model cannot run: {why}"
        return review
    tune = [c for c in cases if c.split == "tune"][: opt.tune_cases]
    heldout = [c for c in cases if c.split == "heldout"][: opt.heldout_cases]
    critic_model = default_critic(config, pool)
    if critic_model is not None and (why := pool.available(critic_model)) is not None:
        review.notes.append(f"no critic rewrite: {why}")
        critic_model = None
    elif critic_model is None:
        review.notes.append("no critic rewrite: no larger local model is configured and assembled")

    # the ladder: a rung down is always tried from above the first; a rung up after max_rewrites
    ladder = ladder_of(config, agent)
    since = await store.last_change(agent)
    rejected_since = await store.rejections(agent, since=since, limit=1000)
    steps: list[str] = []
    idx = ladder.index(model) if model in ladder else -1
    if idx > 0:
        steps.append(ladder[idx - 1])
    rewrites = sum(r.origin != "model" for r in rejected_since)
    tried = {r.digest for r in rejected_since}
    if 0 <= idx < len(ladder) - 1 and rewrites >= opt.max_rewrites:
        up = ladder[idx + 1]
        if f"model:{up}:{current.digest}" in tried:
            review.notes.append(f"{up} already rejected with v{current.version}")
        else:
            steps.append(up)
    for key in list(steps):
        if (why := pool.available(key)) is not None:
            steps.remove(key)
            review.notes.append(f"ladder step to {key} skipped: {why}")

    plan = _Plan(
        list(tune), list(heldout), critic_model is not None, opt.fewshot_candidates, steps, Budget(), []
    )
    over = _fit(config, agent, model, current.system, plan, critic_model)
    review.projected, review.shrunk = plan.projected, plan.shrunk
    review.heldout_cases, review.tune_cases = len(plan.heldout), len(plan.tune)
    if over:
        review.status = "refused"
        review.message = f"review of {agent} refused: projected {'; '.join(over)} even after shrinking"
        return review
    if not plan.heldout:
        review.status, review.message = "failed", f"{agent}'s evaluation set has no held-out case"
        return review

    meter = _Meter()
    # 1. failures on the tuning part (what the critic and the few-shot edits work from)
    tune_scores, tune_out = await _scores(
        pool, config, agent, model, current.system, plan.tune, meter, progress, "tuning cases"
    )
    failing = sorted((i for i, s in enumerate(tune_scores) if s < 1.0), key=lambda i: tune_scores[i])
    failures = [
        (
            plan.tune[i],
            tune_out[i],
            [k for k, v in score_parts(agent, plan.tune[i], tune_out[i]).items() if v < 1.0],
        )
        for i in failing
    ]
    # 2. the baseline on the held-out part
    baseline, _ = await _scores(
        pool,
        config,
        agent,
        model,
        current.system,
        plan.heldout,
        meter,
        progress,
        f"held-out v{current.version}",
    )
    review.score_before = review.score_after = _mean(baseline)

    # 3. candidates
    candidates: list[Candidate] = []
    if plan.critic and critic_model is not None:
        rejected = await store.rejections(agent, limit=8)
        if progress is not None:
            progress(f"critic ({critic_model})", 0, 1)
        try:
            res = await pool.get(critic_model, opt.critic_max_tokens).create(
                critic_messages(agent, current, failures, rejected),
                json_output=_CriticSchema,
                extra_create_args={
                    "max_tokens": opt.critic_max_tokens,
                    "timeout": max(config.models[critic_model].timeout_s, 3 * opt.budget.critic_call_s),
                },
            )
            meter.count(res.usage, critic=True)
            reply = parse_critic(res.content if isinstance(res.content, str) else "", res.finish_reason)
            candidates.append(candidate_from_reply(current, reply))
        except Exception as exc:
            if not isinstance(exc, CriticOutputError):
                meter.count(None, critic=True)
                exc = CriticOutputError(f"critic call failed: {type(exc).__name__}: {str(exc)[:160]}")
            raw_digest = system_digest(f"critic-error:{exc}")
            review.candidates.append(
                CandidateOutcome(
                    "critic", "critic rewrite", "refused", str(exc), model=model, digest=raw_digest
                )
            )
            await store.remember(
                agent,
                raw_digest,
                origin="critic",
                summary="unusable critic reply",
                reason=str(exc),
                model=model,
            )
        if progress is not None:
            progress(f"critic ({critic_model})", 1, 1)
    failing_cases = [plan.tune[i] for i in failing]
    candidates += fewshot_candidates(
        agent, current, tune, failing_cases, n=plan.fewshot, k=opt.fewshot_examples
    )

    # 4. guard, evaluate, gate
    judged: list[tuple[CandidateOutcome, list[float], Any, dict[str, Any]]] = []
    for cand in candidates:
        row = await versions.add_candidate(
            agent,
            cand.system,
            reason=f"{cand.origin}: {cand.summary}",
            scores={"origin": cand.origin, "summary": cand.summary, "model": model, "cause": cand.cause},
        )
        outcome = CandidateOutcome(
            cand.origin,
            cand.summary,
            "refused",
            row.reason or "",
            version=row.version,
            model=model,
            digest=row.digest,
        )
        review.candidates.append(outcome)
        if row.status == "rejected":
            await store.remember(
                agent,
                row.digest,
                origin=cand.origin,
                summary=cand.summary,
                reason=row.reason or "refused",
                version=row.version,
                model=model,
            )
            continue
        scores, _ = await _scores(
            pool,
            config,
            agent,
            model,
            row.system,
            plan.heldout,
            meter,
            progress,
            f"held-out v{row.version} ({cand.origin})",
        )
        d = decide(baseline, scores, alpha=opt.alpha, min_gain=opt.min_gain, method=opt.method)
        outcome.p_value, outcome.gain, outcome.reason = d.p_value, d.mean_gain, d.reason
        outcome.current_mean, outcome.candidate_mean = _mean(baseline), _mean(scores)
        figures = {
            "origin": cand.origin,
            "meta_prompt": f"critic v{_critic_template()['version']}" if cand.origin == "critic" else None,
            "summary": cand.summary,
            "cause": cand.cause,
            "model": model,
            "parent_version": current.version,
            "cases": [c.id for c in plan.heldout],
            "trials": opt.trials,
            "current": baseline,
            "candidate": scores,
            "current_mean": outcome.current_mean,
            "candidate_mean": outcome.candidate_mean,
            "gain": d.mean_gain,
            "method": d.method,
            "alpha": opt.alpha,
            "min_gain": opt.min_gain,
        }
        judged.append((outcome, scores, d, figures))
    passing = [j for j in judged if j[2].promote]
    best = max(passing, key=lambda j: j[2].mean_gain) if passing else None
    for outcome, _, d, figures in judged:
        if outcome.version is None:
            raise RuntimeError(f"candidate {outcome.digest} was judged but never stored as a version")
        if best is not None and outcome is best[0]:
            await versions.promote(agent, outcome.version, reason=d.reason, scores=figures, p_value=d.p_value)
            outcome.status = "promoted"
            review.version_after, review.score_after, review.p_value = (
                outcome.version,
                outcome.candidate_mean,
                d.p_value,
            )
            continue
        winner = best[0].version if best is not None else None
        reason = d.reason if not d.promote else f"passed the gate, but v{winner} gained more ({d.reason})"
        await versions.reject(agent, outcome.version, reason=reason, scores=figures, p_value=d.p_value)
        outcome.status, outcome.reason = "rejected", reason
        await store.remember(
            agent,
            outcome.digest or "",
            origin=outcome.origin,
            summary=outcome.summary,
            reason=reason,
            version=outcome.version,
            model=model,
        )

    # 5. the ladder (with the prompt in use now)
    if best is None:
        for key in plan.ladder:
            scores, _ = await _scores(
                pool, config, agent, key, current.system, plan.heldout, meter, progress, f"held-out on {key}"
            )
            down = ladder.index(key) < idx
            if down:  # the cheaper model passes unless the dearer one is significantly better
                d = decide(scores, baseline, alpha=opt.alpha, min_gain=opt.min_gain, method=opt.method)
                ok = not d.promote and _mean(scores) >= opt.threshold
                reason = (
                    (
                        f"cheaper {key} passes: held-out {_mean(scores):.3f} ≥ {opt.threshold} and {model} "
                        f"not significantly better (p={d.p_value:.4f})"
                    )
                    if ok
                    else (f"cheaper {key} fails: held-out {_mean(scores):.3f}; {d.reason}")
                )
            else:
                d = decide(baseline, scores, alpha=opt.alpha, min_gain=opt.min_gain, method=opt.method)
                ok, reason = d.promote, f"{key} after {rewrites} rejected rewrites: {d.reason}"
            outcome = CandidateOutcome(
                "model",
                f"{'down' if down else 'up'} to {key}",
                "promoted" if ok else "rejected",
                reason,
                model=key,
                digest=f"model:{key}:{current.digest}",
                p_value=d.p_value,
                current_mean=_mean(baseline),
                candidate_mean=_mean(scores),
                gain=_mean(scores) - _mean(baseline),
            )
            review.candidates.append(outcome)
            if ok:
                await store.set_model(agent, key, previous=model, reason=reason, p_value=d.p_value)
                review.model_after, review.score_after = key, _mean(scores)
                break
            await store.remember(
                agent,
                f"model:{key}:{current.digest}",
                origin="model",
                summary=outcome.summary,
                reason=reason,
                model=key,
            )

    review.spent = meter.close()
    promoted = review.promoted
    moved = review.model_after != review.model_before
    review.message = (
        f"{agent}: v{promoted.version} promoted ({promoted.summary}), held-out {review.score_before:.3f} -> "
        f"{review.score_after:.3f}, p={promoted.p_value:.4f}"
        if promoted
        else f"{agent}: model {review.model_before} -> {review.model_after}"
        if moved
        else f"{agent}: v{current.version} kept (held-out {review.score_before:.3f}); "
        f"{len(review.candidates)} candidate(s), none passed the gate"
    )
    return review


# -- rollbacks and the periodic review -------------------------------------------------------


async def check_rollbacks(
    config: AlinaConfig, *, versions: Any = None, store: Any = None, agents: Sequence[str] | None = None
) -> list[Rollback]:
    """Roll back each promoted version in use whose mean live score over its first
    ``optimizer.watch_runs`` runs is below its parent's (over the parent's last as many runs)
    by more than ``optimizer.rollback_margin``; the reason is recorded with the rollback."""
    from alina.memory_store.optimizer import OptimizerStore
    from alina.memory_store.prompts import PromptVersions

    versions = versions or PromptVersions.from_config(config)
    store = store or OptimizerStore.from_config(config)
    opt = config.optimizer
    done: list[Rollback] = []
    for agent in agents or (ORCHESTRATOR, *SPECIALISTS):
        row = await versions.get(agent)
        if row.source != "candidate" or row.status != "promoted" or row.parent_version is None:
            continue
        live = await store.live_scores(agent, row.version, first=opt.watch_runs)
        if len(live) < opt.watch_runs:
            continue
        parent = await store.live_scores(agent, row.parent_version, last=opt.watch_runs)
        if not parent:
            continue
        mine, theirs = _mean(live), _mean(parent)
        if mine < theirs - opt.rollback_margin:
            reason = (
                f"automatic: live score {mine:.3f} over its first {len(live)} runs is below parent "
                f"v{row.parent_version}'s {theirs:.3f} by more than {opt.rollback_margin}"
            )
            new = await versions.rollback(agent, row.parent_version, reason=reason)
            done.append(Rollback(agent, row.version, row.parent_version, new.version, reason))
    return done


async def review_all(
    config: AlinaConfig,
    agent: str | None = None,
    *,
    versions: Any = None,
    store: Any = None,
    clients: Mapping[str, ChatCompletionClient] | None = None,
    progress: Progress | None = None,
) -> ReviewReport:
    """The periodic review: set the queue's threshold, roll back what does worse live, then review
    ``agent`` (always, trigger ``manual``) or every agent with a queued review (``score``) or a
    rolling score below ``optimizer.threshold`` (``rolling``). Each review closes its queue rows
    with its report."""
    from alina.memory_store.optimizer import OptimizerStore
    from alina.memory_store.prompts import PromptVersions

    versions = versions or PromptVersions.from_config(config)
    store = store or OptimizerStore.from_config(config)
    opt = config.optimizer
    report = ReviewReport()
    await store.set_threshold(opt.threshold)
    report.rollbacks = await check_rollbacks(config, versions=versions, store=store)
    known = (ORCHESTRATOR, *SPECIALISTS)
    if agent is not None and agent not in known:
        raise ReviewError(f"unknown agent {agent!r}; known: {', '.join(known)}")
    queued = {q.agent: q for q in await store.queued()}
    rolling = await store.rolling_scores(opt.rolling_window)
    todo: dict[str, str] = {}
    for name in [agent] if agent else known:
        if agent:
            todo[name] = "manual"
        elif name in queued:
            todo[name] = "score"
        elif name in rolling and rolling[name][0] < opt.threshold:
            todo[name] = "rolling"
        else:
            have = (
                f"rolling score {rolling[name][0]:.3f} over {rolling[name][1]}"
                if name in rolling
                else "no scores"
            )
            report.skipped[name] = f"{have}, nothing queued"
    pool = Clients(config, clients)
    try:
        for name, trigger in todo.items():
            ids = await store.claim(name) or [await store.start(name, trigger)]
            try:
                review = await review_agent(
                    config,
                    name,
                    trigger=trigger,
                    versions=versions,
                    store=store,
                    clients=pool,
                    progress=progress,
                )
            except Exception as exc:
                await store.finish(ids, "failed", {"error": f"{type(exc).__name__}: {exc}"[:500]})
                raise
            report.reviews.append(review)
            report.spent.add(review.spent)
            await store.finish(ids, "done" if review.status == "done" else review.status, review.to_json())
    finally:
        await pool.close()
    return report
