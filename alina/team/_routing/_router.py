"""The router: rules, then lexical and semantic similarity, then the model only when unsure."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage
from autogen_core.models import ChatCompletionClient

from alina.monitoring.routing_metrics import observe_routing_decision
from alina.team._routing._ask import ask_model
from alina.team._routing._lexical import LexicalScorer, stem, terms, words
from alina.team._routing._plans import (
    _ADVICE,
    _CONCEPT,
    _DATA_CUE,
    _FOLLOW_UP,
    _INLINE,
    _MENTION,
    _META,
    _ORDER_INTENT,
    _OTHERWISE,
    _QUOTED,
    Condition,
    Plan,
    Step,
    _clauses,
    _condition_of,
    _find,
    compile_claim,
    order_in_clause,
)
from alina.team._routing._reports import report_value
from alina.team._routing._snapshots import (
    turns_from_messages,
)
from alina.team._routing._types import (
    LEXICAL_THRESHOLD,
    MODES,
    ORCHESTRATOR,
    SEMANTIC_DECIDE_THRESHOLD,
    SEMANTIC_THRESHOLD,
    AgentProfile,
    Method,
    Mode,
    RouteDecision,
    Skip,
    Turn,
    reporters_of,
)
from alina.team._similarity import SemanticScorer, shared_embedder

if TYPE_CHECKING:
    from alina.memory_store.embeddings import Embedder

log = logging.getLogger("alina.team._routing")

# --------------------------------------------------------------------------- the router


class Router:
    """Decides the next speaker from the conversation so far (see the module docstring)."""

    def __init__(
        self,
        profiles: Sequence[AgentProfile],
        *,
        client: ChatCompletionClient | None = None,
        mode: Mode = "normal",
        lexical_threshold: float = LEXICAL_THRESHOLD,
        embedder: Embedder | None | Literal["default"] = "default",
        semantic_threshold: float = SEMANTIC_THRESHOLD,
        semantic_decide_threshold: float = SEMANTIC_DECIDE_THRESHOLD,
    ) -> None:
        """``embedder`` drives the semantic stage: ``"default"`` is the process-wide MiniLM
        (loaded on first need; blocked where real model requests are), ``None`` turns the
        stage off (lexical only), anything else with ``embed`` (and optionally ``embed_sync``)
        is used as given (tests pass a deterministic fake)."""
        names = [p.name for p in profiles]
        if ORCHESTRATOR not in names:
            raise ValueError(f"the router needs a profile for {ORCHESTRATOR!r} (got {names})")
        self.profiles = {p.name: p for p in profiles}
        self.client = client
        self.mode: Mode = mode
        self.lexical_threshold = lexical_threshold
        self.semantic_threshold = semantic_threshold
        self.semantic_decide_threshold = semantic_decide_threshold
        self.scorer = LexicalScorer(list(profiles))
        self.semantic = SemanticScorer(
            list(profiles), shared_embedder() if embedder == "default" else embedder
        )
        self.decisions: list[RouteDecision] = []
        self._keywords = {p.name: {stem(k) for k in (*p.keywords, p.name)} for p in profiles}
        self._claims = {p.name: [compile_claim(c, names) for c in p.claims] for p in profiles if p.claims}
        self.reporters = reporters_of(profiles)
        """Report domain -> the agent whose report decides it (``reports:`` in the prompt files)."""
        self._scorers = {p.name for p in profiles if p.scores_others}
        self._producers = [p.name for p in profiles if p.reports]
        self._acting = {p.name for p in profiles if p.side_effects}

    @property
    def specialists(self) -> list[str]:
        return [n for n in self.profiles if n != ORCHESTRATOR]

    @property
    def names(self) -> list[str]:
        return list(self.profiles)

    def set_mode(self, mode: str) -> None:
        """Switch between ``normal`` and ``safe`` (no order reaches an agent with side effects)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)} (got {mode!r})")
        self.mode = mode

    # -- analysis ------------------------------------------------------------------------
    def _hits(self, clause: str) -> dict[str, int]:
        """Position of each agent's first keyword in the clause."""
        first: dict[str, int] = {}
        for pos, w in enumerate(words(clause)):
            s = stem(w)
            for name, kws in self._keywords.items():
                if name not in first and (w in kws or s in kws):
                    first[name] = pos
        return first

    def claimant(self, clause: str) -> str | None:
        """The agent whose claim the clause matches (a word or phrase of each of the claim's
        groups), or None. When several match, the claim that starts first in the clause wins
        (the request leads: "tune the trader so it uses fewer tokens" asks for a change, "the
        error rate since we switched models" for a figure); then the claim with more groups;
        then the agents' order."""
        stems = [stem(w) for w in words(clause)]
        best: tuple[tuple[int, int, int], str] | None = None
        for order, (name, claims) in enumerate(self._claims.items()):
            for groups in claims:
                starts = [_find(stems, phrases) for phrases in groups]
                if None in starts:
                    continue
                key = (min(p for p in starts if p is not None), -len(groups), order)
                if best is None or key < best[0]:
                    best = (key, name)
        return best[1] if best else None

    def plan(self, task: str, history: Sequence[Turn] = ()) -> Plan:
        """The steps the task needs, in order; ``history`` (turns before the task) tells the
        optimizer whether what it must score already exists."""
        plan = Plan()
        plan.order_intent = bool(_ORDER_INTENT.search(task)) and not _ADVICE.search(task)
        if _META.search(task) or (_CONCEPT.search(task) and not _DATA_CUE.search(task)):
            plan.direct = True
            return plan
        reported = {t.source for t in history if t.kind == "text"}
        head, colon, rest = task.partition(":")
        if colon and rest.strip() and self._scorers & self._hits(head).keys():
            task = head + ": (the text to evaluate)"  # what follows is material, not requests
        condition: Condition | None = None
        greeting_only = True
        plan.weak_direct = False
        for raw in _clauses(task):
            if _OTHERWISE.match(raw) and condition is not None:
                condition = condition.negated()
                raw = _OTHERWISE.sub("", raw)
            cond, clause = _condition_of(raw, self.reporters)
            if cond is not None:
                condition = cond
                if not any(s.agent == cond.agent for s in plan.steps):
                    plan.steps.append(Step(cond.agent, "rules", 0.9))  # its report decides
            material = bool(_QUOTED.search(clause) or _INLINE.search(clause))
            scan = _INLINE.sub("", _QUOTED.sub(" ", clause))
            owner = self.claimant(scan)
            if owner is not None:
                # Another agent named here is what the clause is about, not who should act.
                if owner != ORCHESTRATOR:
                    greeting_only = False
                    plan.steps.append(Step(owner, "rules", 0.9, condition))
                continue
            hits = self._hits(scan)
            specialists = sorted((n for n in hits if n != ORCHESTRATOR), key=hits.__getitem__)
            if specialists:
                greeting_only = False
                planned = reported | {s.agent for s in plan.steps}
                ordered = order_in_clause(
                    specialists, scan, material, planned, scorers=self._scorers, producers=self._producers
                )
                for agent in ordered:
                    plan.steps.append(Step(agent, "rules", 0.9, condition))
                continue
            if ORCHESTRATOR in hits or not terms(scan):
                continue  # greeting, thanks, a bare connective, or the condition alone
            best, conf, how = self._similar(scan)
            if how is not None and best != ORCHESTRATOR:
                greeting_only = False
                plan.steps.append(Step(best, how, round(conf, 3), condition))
            elif how is not None:
                plan.weak_direct = True  # only a resemblance to ALINA's examples
                continue
            else:
                greeting_only = False
                plan.unknown.append(clause)
        plan.direct = greeting_only and not plan.steps and not plan.unknown
        if self.mode == "safe" and plan.order_intent and any(s.agent in self._acting for s in plan.steps):
            plan.steps = [s for s in plan.steps if s.agent not in self._acting]
            plan.dropped_for_safety = True
        # A turn handles its whole request: consecutive asks of one agent are one step.
        merged: list[Step] = []
        for s in plan.steps:
            if merged and merged[-1].agent == s.agent and merged[-1].condition == s.condition:
                continue
            merged.append(s)
        plan.steps = merged
        return plan

    def _similar(self, clause: str) -> tuple[str, float, Literal["semantic", "lexical"] | None]:
        """The agent a keyword-less clause is most like: a confident lexical (BM25) match first
        (exact word overlap with an example is the stronger evidence), else a confident semantic
        match; ``None`` as the method when neither is confident (the clause stays unknown)."""
        ranked, conf = self.scorer.rank(clause)
        if conf >= self.lexical_threshold:
            return ranked[0][0], conf, "lexical"
        sem = self.semantic.rank(clause)
        if sem is not None and sem[1] >= self.semantic_threshold:
            return sem[0][0][0], sem[1], "semantic"
        return ranked[0][0], conf, None

    # -- decision ------------------------------------------------------------------------
    def decide(self, turns: Sequence[Turn]) -> RouteDecision:
        """The next speaker without any model call; ``speaker=None`` means the model should
        choose among ``candidates``. Pure: nothing is recorded."""
        if not turns:
            return RouteDecision(ORCHESTRATOR, "done", 1.0, (ORCHESTRATOR,), "empty conversation")
        last = turns[-1]
        if last.kind != "text" and last.source in self.profiles:
            return RouteDecision(
                last.source, "tool", 1.0, (last.source,), f"a {last.kind} returns to {last.source}"
            )
        users = [i for i, t in enumerate(turns) if t.source == "user" and t.kind == "text"]
        if not users:
            return RouteDecision(ORCHESTRATOR, "done", 1.0, (ORCHESTRATOR,), "no user message")
        at = users[-1]
        task = turns[at].content
        after = [t for t in turns[at + 1 :] if t.kind == "text"]
        spoken = [t.source for t in after if t.source in self.specialists]
        plan = self.plan(task, turns[:at])

        mentioned = self._mentions(task)
        if mentioned:
            if ORCHESTRATOR in mentioned and len(mentioned) == 1:
                return RouteDecision(ORCHESTRATOR, "mention", 1.0, (ORCHESTRATOR,), "@alina in the task")
            steps = [Step(a, "rules", 1.0) for a in mentioned if a != ORCHESTRATOR]
            if self.mode == "safe" and plan.order_intent and any(s.agent in self._acting for s in steps):
                steps = [s for s in steps if s.agent not in self._acting]
                plan.dropped_for_safety = True
            return self._next(steps, spoken, turns, "mention", plan)

        if plan.steps:
            return self._next(plan.steps, spoken, turns, None, plan)
        if plan.dropped_for_safety:
            return self._safe_stop()
        if spoken:
            return RouteDecision(
                ORCHESTRATOR, "done", 0.9, (ORCHESTRATOR,), "the specialist asked has answered"
            )
        previous = self._previous_specialists(turns, users)
        follow_up = bool(previous) and (_FOLLOW_UP.search(task) is not None or len(terms(task)) <= 3)
        if plan.direct and not (plan.weak_direct and follow_up):
            return RouteDecision(
                ORCHESTRATOR, "done", 0.8, (ORCHESTRATOR,), "no specialist needed: ALINA answers"
            )
        if follow_up:
            return self._next([Step(a, "follow_up", 0.75) for a in previous], spoken, turns, None, plan)
        ranked, conf = self.scorer.rank(task)
        # The request is neither a greeting nor answered by a rule: a specialist is wanted. The
        # semantic stage picks among the specialists only (ALINA's examples are greetings and
        # questions about her answers, which the plan has already ruled out); when it is not
        # confident, the model chooses.
        open_specialists = [n for n in self.specialists if n not in spoken]
        sem = self.semantic.rank(task, among=open_specialists)
        if sem is not None and sem[1] >= self.semantic_decide_threshold:
            return RouteDecision(
                sem[0][0][0],
                "semantic",
                round(sem[1], 3),
                tuple(n for n, _ in sem[0]),
                "closest in meaning to the agent's description and examples",
            )
        # ALINA is a model candidate only when the request reads most like her examples (small
        # models pick "alina" for almost anything when offered). Listed best match first
        # (semantic when the embedder is at hand, else lexical): a small model leans to the first
        # option, so the order carries the evidence; a larger model reads past it.
        score = dict(sem[0] if sem is not None else ranked)
        candidates = tuple(sorted(open_specialists, key=lambda n: -score[n]))
        if ranked[0][0] == ORCHESTRATOR and ranked[0][1] > 0:
            candidates = (ORCHESTRATOR, *candidates)
        if sem is not None:
            conf = sem[1]
        if len(candidates) == 1:
            how: Method = "lexical" if sem is None else "semantic"
            return RouteDecision(candidates[0], how, round(conf, 3), candidates, "the only candidate")
        return RouteDecision(
            None,
            "model",
            round(conf, 3),
            candidates,
            f"no confident rule or match for {plan.unknown[0] if plan.unknown else task!r:.80}",
        )

    def _safe_stop(self) -> RouteDecision:
        return RouteDecision(
            ORCHESTRATOR,
            "safe",
            1.0,
            (ORCHESTRATOR,),
            "safe mode: placing orders is disabled, ALINA reports it instead of the trader",
        )

    def _mentions(self, task: str) -> list[str]:
        found: list[str] = []
        lowered = {n.lower(): n for n in self.profiles}
        for raw in _MENTION.findall(task):
            low = raw.lower()
            name = lowered.get(low) or lowered.get(low[:-1] if low.endswith("s") else low)
            if name and name not in found:
                found.append(name)
        return found

    def _previous_specialists(self, turns: Sequence[Turn], users: list[int]) -> list[str]:
        if len(users) < 2:
            return []
        seen: list[str] = []
        for t in turns[users[-2] + 1 : users[-1]]:
            if t.source in self.specialists and t.kind == "text" and t.source not in seen:
                seen.append(t.source)
        return seen

    def _next(
        self, steps: list[Step], spoken: list[str], turns: Sequence[Turn], method: Method | None, plan: Plan
    ) -> RouteDecision:
        pending = list(steps)
        skipped: list[Skip] = []
        for who in spoken:
            idx = next((i for i, s in enumerate(pending) if s.agent == who), None)
            if idx is not None:
                pending.pop(idx)
        while pending:
            step = pending[0]
            if step.condition is not None and report_value(turns, step.condition) is False:
                cond = step.condition
                skipped.append(Skip(step.agent, cond.agent, cond.domain, cond.describe()))
                pending.pop(0)
                continue
            break
        if pending:
            step = pending[0]
            m: Method = method or step.method
            reason = {
                "mention": f"@{step.agent} in the task",
                "rules": "task keywords",
                "semantic": "closest in meaning to the agent's description and examples",
                "lexical": "closest to the agent's description and examples",
                "follow_up": "follow-up: the previous request's specialist",
            }.get(m, m)
            if step.condition is not None:
                reason += f" (condition on the {step.condition.agent}'s report holds)"
            if skipped:
                reason += f"; condition not met: skipped {', '.join(k.agent for k in skipped)}"
            return RouteDecision(
                step.agent,
                m,
                1.0 if m == "mention" else step.confidence,
                tuple(dict.fromkeys(s.agent for s in pending)),
                reason,
                tuple(skipped),
            )
        if plan.dropped_for_safety:
            return self._safe_stop()
        reason = "every needed specialist has answered"
        if skipped:
            reason = f"condition not met: skipped {', '.join(k.agent for k in skipped)}"
        return RouteDecision(ORCHESTRATOR, "done", 0.9, (ORCHESTRATOR,), reason, tuple(skipped))

    # -- the model step ------------------------------------------------------------------
    async def route(self, turns: Sequence[Turn]) -> RouteDecision:
        """Decide (rules and lexical first); ask the model only when they are not confident.
        Records the decision (``decisions`` and the metrics). Embeddings the semantic stage
        needs are computed first, off the event loop, then the decision is taken with them."""
        with self.semantic.deferred():
            d = self.decide(turns)
        if self.semantic.missing:
            await self.semantic.prepare()
            with self.semantic.deferred():  # never embed on the event loop
                d = self.decide(turns)
            self.semantic.missing.clear()  # still missing: the embedder failed or is blocked
        if d.speaker is None and self.client is not None:
            d = await self._ask_model(turns, d)
        return self._record(d)

    async def _ask_model(self, turns: Sequence[Turn], pending: RouteDecision) -> RouteDecision:
        if self.client is None:
            raise RuntimeError("Router._ask_model needs a model client (route() checks this first)")
        return await ask_model(self.client, self.profiles, turns, pending)

    def _record(self, d: RouteDecision) -> RouteDecision:
        self.decisions.append(d)
        observe_routing_decision(d.method, d.confidence)
        return d

    # -- the two hooks SelectorGroupChat calls ---------------------------------------------
    async def selector_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> str | None:
        """AutoGen's ``selector_func``: a name, or None (no router model: AutoGen's selector
        then chooses among :meth:`candidate_func`'s list)."""
        return (await self.route(turns_from_messages(messages))).speaker

    def candidate_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> list[str]:
        """Only consulted when ``selector_func`` returned None: the model picks among these."""
        last = self.decisions[-1] if self.decisions else None
        return list(last.candidates) if last and last.candidates else self.specialists
