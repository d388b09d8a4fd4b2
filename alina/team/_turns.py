"""Taking a run's turns: one ``run_stream`` call per turn, the record of every message (secrets
masked, scored), the commit of every turn, and what the turns touch while they run (the run
context its tools see, the system mode)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    MemoryQueryEvent,
    ModelClientStreamingChunkEvent,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)
from autogen_core import CancellationToken

from alina._secrets import mask_arguments, redact_text
from alina.config import ORCHESTRATOR, AlinaConfig
from alina.memory_store.checkpoints import Evaluation, MessageRow, PromptRef, RoutingRow, TurnCommit
from alina.memory_store.hot import HotState
from alina.models import CallRecord
from alina.monitoring import metrics
from alina.skills.context import RunContext, current_run_context
from alina.team._answers import REPORT_TYPES, check_output
from alina.team._committer import StoreStateCallback, TurnCommitter
from alina.team._result import _POSITION_FIELDS, RunResult, _Progress
from alina.team._sink import STOP_REQUESTED, ModeGate, RunEvent
from alina.team._team import AlinaTeam
from alina.trading.mandate import Mandate


def _content(item: BaseAgentEvent | BaseChatMessage) -> str:
    """The stored and printed text of one message, secrets masked: every copy of a run's
    messages (Postgres, Redis, printout, memory) is made from this text, so this is where tool
    arguments (by name and by shape) and key-shaped text in results and answers are masked."""
    if isinstance(item, ToolCallRequestEvent):
        return json.dumps(
            [{"name": c.name, "arguments": mask_arguments(c.arguments), "id": c.id} for c in item.content]
        )
    if isinstance(item, ToolCallExecutionEvent):
        return redact_text("\n".join(f"{r.name}: {r.content}" for r in item.content))
    if isinstance(item, MemoryQueryEvent):  # what was retrieved before a model call, one line each
        return redact_text(
            "\n".join(f"[{(c.metadata or {}).get('kind', 'memory')}] {c.content!s}" for c in item.content)
        )
    return redact_text(item.to_text())


def _cancelling() -> bool:
    """Whether the current task itself is being cancelled (not just the team's token)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _stop(turns: asyncio.Future[None], token: CancellationToken, grace_s: float = 10.0) -> None:
    """Cancel the team's token and give the turn task ``grace_s`` to wind down."""
    token.cancel()
    await asyncio.wait({turns}, timeout=grace_s)
    if turns.done() and not turns.cancelled():
        turns.exception()  # retrieved: the cancellation's own error is expected here


class _TurnTaker:
    """The turn loop and the per-turn pieces of :class:`~alina.team._run.TeamRunner` (its base
    class; the runner sets every attribute declared here)."""

    config: AlinaConfig
    team: AlinaTeam
    modes: ModeGate
    hot: HotState | None
    on_event: Callable[[RunEvent], None] | None
    on_chunk: Callable[[str, str], None] | None
    on_store_state: StoreStateCallback | None
    order_symbols: Callable[[], list[str]]
    _mandate: Mandate | None
    _ctx: RunContext | None
    _side_effect_tools: frozenset[str]
    _calls: list[CallRecord]
    _routing_seen: int
    _stop_reason: str | None

    async def _log_calls(self, run_id: str) -> None:
        raise NotImplementedError  # the runner's event log

    async def _model_exhausted(self, agent: str, reason: str) -> None:
        """A model call spent its retries and its fallback: the system enters safe mode (shared,
        recorded with the reason) until health returns for ``resilience.recover_after_s``."""
        ctx = current_run_context()
        await self.modes.escalate("safe", reason, actor="resilience", run_id=ctx.run_id if ctx else None)
        self.team.router.set_mode(self.modes.router_mode())

    def _store_state(self, ok: bool, reason: str) -> None:
        """The run store went away (orders pause: state cannot be saved) or came back."""
        if ok:
            self.modes.clear_floor("store")
        else:
            why = f"the run store is unreachable, state cannot be saved ({reason})"
            self.modes.raise_floor("store", "safe", why)
        if self.on_store_state is not None:
            self.on_store_state(ok, reason)

    def _side_effect_refusal(self) -> str | None:
        if self.modes.blocks_side_effects:
            return f"the system is in {self.modes.current} mode (read and report only)"
        return None

    def _context(self, result: RunResult, p: _Progress, earlier: list[MessageRow]) -> RunContext:
        """What this run's tools may know: its request, its conversation, the turn, and the
        order mandate read from the user's request alone (never from what agents or tools say)."""
        mandate = Mandate.from_request(result.task, self.order_symbols(), previous=self._mandate)
        self._mandate = mandate
        return RunContext(
            task=result.task,
            messages=lambda: [*earlier, *result.events],
            run_id=result.run_id,
            turn=lambda: p.turn + 1,
            mandate=mandate,
            side_effect_refusal=self._side_effect_refusal,
            outputs=result.tool_data,  # the skills' structured results land in the run's result
        )

    async def _take_turns(
        self,
        result: RunResult,
        task: str | None,
        p: _Progress,
        committer: TurnCommitter | None,
        token: CancellationToken,
    ) -> None:
        """One ``run_stream`` call per turn; after each, queue the turn's commit."""
        last = time.monotonic()
        while True:
            if token.is_cancelled():  # cancel() between two turns: take no further turn
                raise asyncio.CancelledError
            if self._stop_reason is not None:
                result.status = "stopped"
                result.stop_reason = STOP_REQUESTED + self._stop_reason
                return
            if result.turns >= self.config.team.max_turns:
                result.status = "stopped"
                result.stop_reason = f"maximum of {self.config.team.max_turns} turns reached"
                return
            before = result.turns
            await self.modes.refresh()  # an operator's `alina mode set` reaches a running run here
            self.team.router.set_mode(self.modes.router_mode())
            async for item in self.team.team.run_stream(task=task, cancellation_token=token):
                if isinstance(item, TaskResult):
                    result.stop_reason = item.stop_reason or ""
                    continue
                if isinstance(item, ModelClientStreamingChunkEvent):  # shown, never stored
                    if self.on_chunk is not None:
                        self.on_chunk(item.source, item.content)
                    continue
                now = time.monotonic()
                p.seq += 1
                p.pending.append(self._record(result, item, p.seq, latency_ms=(now - last) * 1000))
                last = now
                p.routing_seq = self._take_routing(result, p.pending_routing, p.routing_seq)
            task = None
            p.routing_seq = self._take_routing(result, p.pending_routing, p.routing_seq)
            p.turn += 1
            self._count_calls(result, p.calls_seen)
            p.calls_seen = len(self._calls)
            result.wall_s = p.wall_before + time.monotonic() - p.start
            if committer is not None:
                await committer.put(await self._commit(result, p))
            if self.hot is not None:
                await self.hot.record_turn(result.run_id, p.turn, p.pending)
            await self._log_calls(result.run_id)
            p.pending, p.pending_routing = [], []
            if result.events and result.events[-1].source == ORCHESTRATOR:
                result.status = "completed"
                return
            if result.turns == before:  # nobody spoke: the team cannot go on
                result.status = "stopped"
                result.stop_reason = result.stop_reason or "no agent replied"
                return

    @staticmethod
    async def _put_quietly(committer: TurnCommitter, commit: TurnCommit) -> None:
        with contextlib.suppress(Exception):  # an earlier write error is reported by close()
            await committer.put(commit)

    async def _commit(self, result: RunResult, p: _Progress) -> TurnCommit:
        """Snapshot this turn: the team is idle between ``run_stream`` calls, so its state is
        consistent. The state is copied (JSON round trip) so later turns cannot mutate it."""
        state = json.loads(json.dumps(await self.team.team.save_state(), default=str))
        position = {name: getattr(result, name) for name in _POSITION_FIELDS}
        position.update(message_count=p.seq, routing_count=p.routing_seq, wall_s=round(result.wall_s, 3))
        prompts = [PromptRef(a, pr.version, pr.digest, pr.system) for a, pr in self.team.prompts.items()]
        return TurnCommit(
            result.run_id, p.turn, list(p.pending), list(p.pending_routing), state, prompts, position
        )

    def _count_calls(self, result: RunResult, seen: int) -> None:
        for c in self._calls[seen:]:
            if c.outcome == "exhausted":  # a verdict on the attempts before it, not a model call
                continue
            if c.outcome == "cached":
                result.cached_calls += 1
                continue
            result.model_calls += 1
            result.prompt_tokens += c.prompt_tokens
            result.completion_tokens += c.completion_tokens

    def _take_routing(self, result: RunResult, into: list[RoutingRow], seq: int) -> int:
        """Move the router's new decisions into the result and ``into`` (seq continues the run's)."""
        for d in self.team.router.decisions[self._routing_seen :]:
            seq += 1
            result.routing.append(d)
            into.append(RoutingRow(seq, d.speaker, d.method, d.confidence, tuple(d.candidates), d.reason))
        self._routing_seen = len(self.team.router.decisions)
        return seq

    def _evaluate(self, result: RunResult, item: BaseAgentEvent | BaseChatMessage) -> tuple[Evaluation, ...]:
        """Scores of a chat message: ALINA's answer carries its answer check (made by the
        checking client during the turn), a specialist's report its output check."""
        if not isinstance(item, BaseChatMessage) or item.source == "user":
            return ()
        agent = item.source
        prompt = self.team.prompts.get(agent)
        model = self.config.model_for(agent).model if agent in self.config.agents else None
        where: dict[str, Any] = {"prompt_version": prompt.version if prompt else None, "model": model}
        if agent == ORCHESTRATOR:
            checks = self._ctx.answer_checks if self._ctx is not None else []
            if not checks:
                return ()
            check = checks.pop()
            result.answer_check = check.to_json()
            metrics.observe_evaluation("answer_check", agent, check.score, check.outcome)
            return (Evaluation("answer_check", agent, check.score, check.passed, check.to_json(), **where),)
        if type(item).__name__ not in REPORT_TYPES:
            return ()
        score, checks_met = check_output(item.to_text(), agent)
        metrics.observe_evaluation("output_check", agent, score, "passed" if score == 1.0 else "failed")
        return (Evaluation("output_check", agent, score, score == 1.0, checks_met, **where),)

    def _record(
        self, result: RunResult, item: BaseAgentEvent | BaseChatMessage, seq: int, latency_ms: float
    ) -> RunEvent:
        usage = getattr(item, "models_usage", None)
        decision = None
        if isinstance(item, ToolCallExecutionEvent):
            acted = [r for r in item.content if r.name in self._side_effect_tools]
            decision = redact_text("; ".join(f"{r.name}: {r.content}" for r in acted))[:1000] or None
        elif isinstance(item, BaseChatMessage) and item.source == ORCHESTRATOR:
            decision = "answer: " + redact_text(item.to_text())[:1000]
        event = RunEvent(
            decision=decision,
            evaluations=self._evaluate(result, item),
            seq=seq,
            source=item.source,
            type=type(item).__name__,
            content=_content(item),
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            latency_ms=None if item.source == "user" else round(latency_ms, 1),
        )
        result.events.append(event)
        if isinstance(item, BaseChatMessage) and item.source != "user":
            result.turns += 1
            if item.source == ORCHESTRATOR:
                result.answer = event.content
        if isinstance(item, ToolCallExecutionEvent):
            result.tool_calls += len(item.content)
        if self.on_event is not None:
            self.on_event(event)
        return event
