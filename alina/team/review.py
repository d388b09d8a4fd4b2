"""The optimizer's critic loop: review an agent, propose candidate prompts (and models), promote
only what the gate finds significantly better on the held-out cases.

One review of one agent (:func:`review_agent`):

1. **Plan and budget.** The cases (``optimizer.tune_cases`` / ``heldout_cases`` caps), the
   candidates (a critic rewrite, ``optimizer.fewshot_candidates`` few-shot edits, a ladder rung)
   and the model calls, tokens and wall time they take are projected first; over a cap of
   ``optimizer.budget`` the review is shrunk (fewer few-shot edits, no ladder step, fewer tuning
   cases, no critic) and refused when even that does not fit.
2. **Failures.** The agent (its prompt in use, its model) runs the tuning cases; the ones below a
   perfect score, with the checks that failed (:func:`~alina.meta_prompts.evals.score_parts`),
   are what the critic sees. It never sees a held-out case.
3. **Candidates.** The critic model (``optimizer.critic``; default the largest local rung) gets the
   meta-prompt ``critic.yaml`` with the failures and the rejected edits (hash + summary) and
   answers with JSON (fenced text is accepted; a cut-off or garbled reply is rejected with the
   reason). Few-shot edits add or swap examples drawn from the tuning cases' reference outputs
   (DSPy-bootstrap style). Every candidate goes through
   :meth:`~alina.memory_store.prompts.PromptVersions.add_candidate`, which stores it and refuses
   an identical, truncated, protected-changing or instruction-override text before evaluation.
4. **Gate.** Each sound candidate runs the held-out cases (``optimizer.trials`` times each) on
   the agent's model; :func:`~alina.meta_prompts.gate.decide` compares its per-case scores with
   the prompt in use (``optimizer.alpha``, ``optimizer.min_gain``). The best candidate that passes
   is promoted, every other one rejected; each keeps its scores, p-value and reason.
5. **Ladder.** After ``optimizer.max_rewrites`` rejected candidates since the agent's last change
   the next model of ``agents.NAME.ladder`` runs the held-out cases with the prompt in use and is
   switched to if the gate passes; an agent above its ladder's first rung moves back down when the
   cheaper model passes (mean ≥ ``optimizer.threshold`` and the dearer one not significantly
   better). The choice is stored (``agent_models``) and runs use it.

:func:`review_all` is the periodic entry point (``alina optimize review``; ``alina serve`` hourly):
it writes ``optimizer.threshold`` for the queue trigger, rolls back promoted versions that do
worse live (:func:`check_rollbacks`), and reviews the agents with a queued review or a rolling
score below the threshold (or the one named).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from autogen_core.models import ChatCompletionClient, LLMMessage, SystemMessage, UserMessage
from pydantic import BaseModel

from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.meta_prompts._prompts import PROTECTED_HEADER, Prompt, compose, split_protected, system_digest
from alina.meta_prompts.evals import Case, load_eval_set, score_case, score_parts
from alina.meta_prompts.gate import decide

__all__ = [
    "CRITIC_FILE",
    "AgentReview",
    "Budget",
    "Candidate",
    "CandidateOutcome",
    "CriticOutputError",
    "CriticReply",
    "ReviewReport",
    "Rollback",
    "check_rollbacks",
    "fewshot_candidates",
    "ladder_of",
    "parse_critic",
    "review_agent",
    "review_all",
]

CRITIC_FILE = Path(__file__).resolve().parents[1] / "meta_prompts" / "critic.yaml"
EXAMPLES_HEADER = "Examples of good replies:"
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


# -- the critic's reply ----------------------------------------------------------------------


class CriticOutputError(ValueError):
    """The critic's reply holds no usable prompt (the message says why)."""


@dataclass(frozen=True)
class CriticReply:
    prompt: str
    summary: str
    cause: str


class _CriticSchema(BaseModel):
    cause: str
    summary: str
    prompt: str


_FENCE = re.compile(r"```([a-zA-Z]*)\s*\n(.*?)```", re.DOTALL)
_PROMPT_KEYS = ("prompt", "instructions", "system", "new_prompt", "system_prompt")


def _from_mapping(data: Any) -> CriticReply | None:
    if not isinstance(data, dict):
        return None
    prompt = next((data[k] for k in _PROMPT_KEYS if isinstance(data.get(k), str) and data[k].strip()), None)
    if prompt is None:
        return None
    summary = str(data.get("summary") or "").strip() or "critic rewrite"
    return CriticReply(
        prompt.strip(), " ".join(summary.split())[:200], str(data.get("cause") or "").strip()[:300]
    )


def parse_critic(text: str, finish_reason: str = "stop") -> CriticReply:
    """The prompt in the critic's reply: a JSON object (bare, fenced or embedded in prose) with
    ``prompt`` (or ``instructions``/``system``), or else a fenced text block. Raises
    :class:`CriticOutputError` with the reason for a cut-off, empty or unusable reply; never
    anything else."""
    raw = (text or "").strip()
    if finish_reason == "length":
        raise CriticOutputError(
            f"truncated: the critic's reply was cut off at its token limit ({raw[-60:]!r})"
        )
    if not raw:
        raise CriticOutputError("empty: the critic replied nothing")
    attempts = [raw] + [body for _, body in _FENCE.findall(raw)]
    start, end = raw.find("{"), raw.rfind("}")
    if 0 <= start < end:
        attempts.append(raw[start : end + 1])
    for chunk in attempts:
        try:
            reply = _from_mapping(json.loads(chunk))
        except (json.JSONDecodeError, RecursionError):
            continue
        if reply is not None:
            return reply
    fenced = [body.strip() for lang, body in _FENCE.findall(raw) if lang.lower() != "json" and body.strip()]
    if fenced:
        return CriticReply(fenced[0], "critic rewrite (fenced text)", "")
    if raw.startswith("{"):
        raise CriticOutputError(f"garbled: not valid JSON and no prompt in it ({raw[:80]!r})")
    raise CriticOutputError(
        f"no prompt: neither a JSON object with a prompt nor a fenced block ({raw[:80]!r})"
    )


@lru_cache(maxsize=4)
def _critic_template(path: Path = CRITIC_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"version", "system", "user"} <= set(data):
        raise ReviewError(f"{path}: the meta-prompt needs version, system and user")
    return data


def critic_messages(
    agent: str, current: Prompt, failures: Sequence[tuple[Case, Any, list[str]]], rejected: Sequence[Any]
) -> list[LLMMessage]:
    """The meta-prompt filled for ``agent``: its rewritable body, its protected rules (read only),
    up to 4 failed tuning cases with the findings, and the rejected edits (hash + summary)."""
    t = _critic_template()
    body, protected = split_protected(current.system)
    shown = []
    for case, output, findings in list(failures)[:4]:
        out = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
        shown.append(
            f"- task: {case.task}\n  output: {out[:300]}\n  failed checks: {', '.join(findings) or 'none'}"
        )
    rej = [f"- {r.digest}: {r.summary} (rejected: {r.reason[:120]})" for r in list(rejected)[:8]]
    user = t["user"].format(
        agent=agent,
        body=body,
        protected=protected or "(none)",
        failures="\n".join(shown) or "(no failed case)",
        rejected="\n".join(rej) or "(none yet)",
    )
    return [SystemMessage(content=t["system"].format()), UserMessage(content=user, source="user")]


# -- candidates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    system: str
    """The full system text (protected section included)."""
    summary: str
    origin: Origin
    cause: str = ""


def candidate_from_reply(current: Prompt, reply: CriticReply) -> Candidate:
    """The critic writes the instructions only; the protected section is appended unchanged.
    A reply that carries the protected header itself is taken whole (the guard then checks it)."""
    text = reply.prompt if PROTECTED_HEADER in reply.prompt else compose(reply.prompt, current.protected)
    return Candidate(text, reply.summary, "critic", reply.cause)


def _plain(text: str, limit: int) -> str:
    """One line, no braces (a prompt is a template), cut at a word."""
    flat = " ".join(str(text).replace("{", "(").replace("}", ")").split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _example(agent: str, case: Case) -> str | None:
    ref = case.reference
    if ref is None:
        return None
    if agent == ORCHESTRATOR:
        reports = " | ".join(f"{r.source}: {r.content}" for r in case.reports)
        task, said, answer = _plain(case.task, 120), _plain(reports, 220), _plain(ref, 240)
        return f'- Request: "{task}" Reports: {said} Answer: {answer}'
    if isinstance(ref, Mapping) and ref.get("tool"):
        args = ", ".join(f"{k}={v}" for k, v in (ref.get("args") or {}).items())
        return f'- Request: "{_plain(case.task, 120)}" Call {ref["tool"]}' + (
            f" with {_plain(args, 120)}." if args else "."
        )
    return None


def fewshot_candidates(
    agent: str, current: Prompt, tune: Sequence[Case], failing: Sequence[Case], *, n: int, k: int
) -> list[Candidate]:
    """``n`` candidates that add (or swap) ``k`` worked examples from the tuning cases' reference
    outputs at the end of the instructions: failing cases first, then the others, each candidate
    taking the next ``k`` not already shown (DSPy-bootstrap style: demonstrations, no critic)."""
    body, _ = split_protected(current.system)
    base, had = body, ""
    if EXAMPLES_HEADER in body:
        base, had = body.split(EXAMPLES_HEADER, 1)
        base = base.strip()
    pool = [c for c in [*failing, *[c for c in tune if c not in failing]] if _example(agent, c)]
    pool = [c for c in pool if f'"{_plain(c.task, 120)}"' not in had]
    out: list[Candidate] = []
    for i in range(n):
        chosen = pool[i * k : (i + 1) * k]
        if not chosen:
            break
        lines = [e for c in chosen if (e := _example(agent, c))]
        text = compose(f"{base}\n{EXAMPLES_HEADER}\n" + "\n".join(lines), current.protected)
        verb = "swap examples for" if had else "add examples"
        out.append(Candidate(text, f"few-shot: {verb} {', '.join(c.id for c in chosen)}", "fewshot"))
    return out


# -- running the agent on cases --------------------------------------------------------------


class _Meter:
    """Counts the model calls, tokens and wall time a review spends."""

    def __init__(self) -> None:
        self.spent = Budget()
        self._t0 = time.monotonic()

    def count(self, usage: Any, *, critic: bool = False) -> None:
        self.spent.model_calls += 1
        self.spent.critic_calls += int(critic)
        if usage is not None:
            self.spent.tokens += int(getattr(usage, "prompt_tokens", 0) or 0) + int(
                getattr(usage, "completion_tokens", 0) or 0
            )

    def close(self) -> Budget:
        self.spent.wall_s = round(time.monotonic() - self._t0, 2)
        return self.spent


class Clients:
    """Model clients by key under ``models:`` (built on first use from config), or given ones
    (tests pass scripted clients)."""

    def __init__(self, config: AlinaConfig, given: Mapping[str, ChatCompletionClient] | None = None) -> None:
        self.config = config
        self.given = dict(given or {})
        self._built: dict[tuple[str, int | None], ChatCompletionClient] = {}

    def available(self, key: str) -> str | None:
        """Why model ``key`` cannot run here (None: it can)."""
        if key in self.given:
            return None
        m = self.config.models.get(key)
        if m is None:
            return f"no model {key!r} under models:"
        gguf = m.gguf_file() if m.provider == "llamacpp" else None
        if gguf is not None and not gguf.is_file():
            return f"model {key} is not assembled ({gguf}); run make setup"
        return None

    def get(self, key: str, max_tokens: int | None) -> ChatCompletionClient:
        if key in self.given:
            return self.given[key]
        if (key, max_tokens) not in self._built:
            from alina.models import build_provider

            self._built[(key, max_tokens)] = build_provider(self.config.models[key], max_tokens=max_tokens)
        return self._built[(key, max_tokens)]

    async def close(self) -> None:
        for c in self._built.values():
            await c.close()


def _tools(agent: str) -> list[Any]:
    if agent not in SPECIALISTS:
        return []
    from alina.agents._tools import tools_for_agent

    return list(tools_for_agent(agent))


async def run_case(
    client: ChatCompletionClient,
    agent: str,
    system: str,
    case: Case,
    tools: Sequence[Any],
    meter: _Meter | None = None,
) -> Any:
    """The agent's output on ``case`` with system text ``system``, as the eval set scores it.

    ALINA answers the task from the case's reports (each a message from its specialist). A
    specialist makes its forced tool call; the tool is never run: when it is the expected tool
    the case's report (the real tool's output on the packaged data) is its text, as a run with
    ``reflect_on_tool_use: false`` would show it; another tool's output is not known to the case
    and counts as no report. A failed model call (a timeout on a loaded machine) is tried once
    more; a second failure is an empty output (it scores low, the review goes on) and is counted
    in the meter's ``errors``, so a report shows when failures, not prompts, moved the scores."""
    messages: list[LLMMessage] = [
        SystemMessage(content=system),
        UserMessage(content=case.task, source="user"),
    ]
    if agent == ORCHESTRATOR:
        messages += [UserMessage(content=r.content, source=r.source) for r in case.reports]
    for attempt in (1, 2):
        try:
            result = await client.create(messages, tools=list(tools) if agent != ORCHESTRATOR else [])
            break
        except Exception as exc:
            if meter is not None:
                meter.count(None)
            if attempt == 2:
                if meter is not None:
                    meter.spent.errors += 1
                return (
                    ""
                    if agent == ORCHESTRATOR
                    else {"tool": None, "args": {}, "text": "", "error": str(exc)[:200]}
                )
    if meter is not None:
        meter.count(result.usage)
    content = result.content
    if agent == ORCHESTRATOR:
        return content if isinstance(content, str) else ""
    if isinstance(content, list) and content:
        call = content[0]
        try:
            args = json.loads(call.arguments or "{}")
        except (json.JSONDecodeError, TypeError):
            args = {}
        right = call.name == case.expect.get("tool")
        text = "\n".join(r.content for r in case.reports) if right else ""
        return {"tool": call.name, "args": args if isinstance(args, dict) else {}, "text": text}
    return {"tool": None, "args": {}, "text": content if isinstance(content, str) else ""}


# -- plan and budget -------------------------------------------------------------------------


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


def ladder_of(config: AlinaConfig, agent: str) -> list[str]:
    """``agents.NAME.ladder``, or the agent's model followed by the larger local rungs configured."""
    a = config.agents[agent]
    if a.ladder:
        return list(a.ladder)
    from alina.models.rungs import RUNGS

    return [a.model, *[k for k in RUNGS if k in config.models and k != a.model]]


def default_critic(config: AlinaConfig, clients: Clients) -> str | None:
    """``optimizer.critic``, else the largest local rung that can run here, else None."""
    if config.optimizer.critic is not None:
        return config.optimizer.critic
    from alina.models.rungs import RUNGS

    rungs = sorted((r for r in RUNGS.values() if r.key in config.models), key=lambda r: r.size, reverse=True)
    return next((r.key for r in rungs if clients.available(r.key) is None), None)


async def _scores(
    clients: Clients,
    config: AlinaConfig,
    agent: str,
    model: str,
    system: str,
    cases: Sequence[Case],
    meter: _Meter,
    progress: Progress | None,
    step: str,
) -> tuple[list[float], list[Any]]:
    """Per-case scores (mean over ``optimizer.trials``) and the first trial's outputs."""
    client = clients.get(model, config.agents[agent].max_tokens)
    tools = _tools(agent)
    trials = config.optimizer.trials
    scores: list[float] = []
    outputs: list[Any] = []
    for i, case in enumerate(cases):
        got = []
        for t in range(trials):
            out = await run_case(client, agent, system, case, tools, meter)
            got.append(score_case(agent, case, out))
            if t == 0:
                outputs.append(out)
        scores.append(sum(got) / len(got))
        if progress is not None:
            progress(step, i + 1, len(cases))
    return scores, outputs


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


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
        assert outcome.version is not None
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
