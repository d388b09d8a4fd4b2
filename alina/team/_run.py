"""The run loop: drive the team one turn at a time, checkpoint every turn, resume after a crash.

``TeamRunner`` owns one team. ``run(task)`` is one task (``alina run``); calling it again
continues the same conversation (``alina chat`` follow-ups). ``resume(run_id)`` continues a run
that was interrupted (killed, crashed, stopped by a limit) from its last checkpoint.

The team takes exactly one turn per ``run_stream`` call. After each turn the runner takes the
team's ``save_state()`` (consistent: the team is idle) and queues a :class:`TurnCommit` of that
turn's messages, routing decisions, state, prompt versions and counters. A background committer
writes each commit in one transaction, in order, while the next turn's model call already runs;
the queue is bounded, so a slow database applies back pressure instead of growing memory. Postgres
therefore only ever holds whole turns: after a SIGKILL the run resumes from the last committed
turn and redoes the one that was cut, with no message lost or stored twice. When Postgres goes
away mid-run, the committer retries (``resilience.store_outage_s``) while the turns queue in order,
and ``on_store_state`` tells the caller to pause orders until a commit succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict
from typing import Any

from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient

from alina.config import AlinaConfig
from alina.memory_store.checkpoints import MessageRow, TurnCommit
from alina.memory_store.hot import HotState
from alina.memory_store.vector import VectorMemory
from alina.memory_store.writer import EventWriter
from alina.meta_prompts import Prompt
from alina.models import CallRecord
from alina.monitoring import metrics
from alina.runtime.modes import SystemMode
from alina.skills.context import RunContext, run_context
from alina.skills.loader import default_loader
from alina.team._committer import StoreStateCallback, TurnCommitter
from alina.team._prompt_swap import _PromptSwap
from alina.team._result import _POSITION_FIELDS, RunResult, _error_text, _Progress, _thread_messages
from alina.team._routing import Mode
from alina.team._sink import AlreadyCompleted, ModeGate, ResumeError, RunEvent, RunSink
from alina.team._team import AlinaTeam, build_team
from alina.team._turns import _cancelling, _stop, _TurnTaker
from alina.trading.mandate import Mandate, packaged_symbols

logger = logging.getLogger(__name__)


class TeamRunner(_PromptSwap, _TurnTaker):
    """Runs tasks on one ALINA team, checkpoints every turn, and resumes interrupted runs."""

    def __init__(
        self,
        config: AlinaConfig,
        *,
        sink: RunSink | None = None,
        clients: dict[str, ChatCompletionClient] | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        hot: HotState | None = None,
        mode: Mode = "normal",
        memory: VectorMemory | None = None,
        memory_writer: Callable[[RunResult], Awaitable[None]] | None = None,
        events: EventWriter | None = None,
        modes: ModeGate | None = None,
        order_symbols: Callable[[], list[str]] | None = None,
        on_store_state: StoreStateCallback | None = None,
        prompt_source: Callable[[], Awaitable[Mapping[str, Prompt]]] | None = None,
        on_chunk: Callable[[str, str], None] | None = None,
    ) -> None:
        """``prompt_source()``: the prompts the agents should run with (e.g.
        ``PromptVersions(dsn).active_prompts``), asked at the start of every :meth:`run`; an agent
        whose prompt differs from the one it runs with gets it then (see :meth:`refresh_prompts`).
        ``memory``: the agents retrieve from it before each model call (see ``build_team``).
        ``memory_writer``: called with each finished run's result (``run`` and ``resume``) in a
        background task, so the run never waits for it; :meth:`flush_memory` waits for it.
        ``events``: the operational log (``events`` table): run start/resume/end and every model
        call attempt with its outcome (ok, timeout, fallback, cached, ...), no message content;
        batched off the model path, failing open.
        ``modes``: the system mode (``alina.runtime.modes.SystemMode``): refreshed before every
        turn; safe and halt remove side-effect skills from the agents and keep order tasks from
        the trader. ``order_symbols``: the tradeable pairs an order mandate resolves names
        against (default: the pairs of the packaged markets file).
        While a turn commit fails (Postgres away: the run goes on, its turns queue in order and
        are retried for up to ``resilience.store_outage_s``) this process is in safe mode (a local
        floor: orders pause). ``on_store_state(ok, reason)`` is also told: False and the reason
        when a commit fails, True when one succeeds again (on the event loop; must not block).
        ``on_chunk(agent, text)``: the agents stream their text turns and each piece is handed
        over as it is generated (never stored: the finished message is the record, and may
        differ, e.g. when the answer check replaced the answer)."""
        self.config = config
        self.modes: ModeGate = modes if modes is not None else SystemMode()  # this process only
        if mode != "normal":
            self.modes.raise_floor("run", mode, f"--mode {mode} for this process")
        mode = self.modes.router_mode()
        self.order_symbols = order_symbols or (lambda: list(packaged_symbols()))
        self._mandate: Mandate | None = None  # the conversation's latest request's mandate
        self._ctx: RunContext | None = None  # the run being driven
        self._side_effect_tools = frozenset(
            s.name for s in default_loader().skillset.skills.values() if s.side_effects
        )
        self.on_store_state = on_store_state
        self.sink = sink
        self.hot = hot
        self.events = events
        self._calls_logged = 0
        self._events_warned = False
        self.on_event = on_event
        self.on_chunk = on_chunk
        self._cancel_reason: str | None = None  # set by cancel() while a run is driven
        self._token: CancellationToken | None = None
        self.memory_writer = memory_writer
        self.prompt_source = prompt_source
        self._writes: set[asyncio.Task[None]] = set()
        self._calls: list[CallRecord] = []
        self.team: AlinaTeam = build_team(
            config,
            clients=clients,
            listener=self._calls.append,
            mode=mode,
            memory=memory,
            on_exhausted=self._model_exhausted,
            stream=on_chunk is not None,
        )
        for client in self.team.clients.values():  # injected clients may be ResilientClients too
            if getattr(client, "listener", "absent") is None:
                client.listener = self._calls.append  # type: ignore[attr-defined]
            if getattr(client, "on_exhausted", "absent") is None:
                client.on_exhausted = self._model_exhausted  # type: ignore[attr-defined]
        self._routing_seen = 0
        self._earlier: list[MessageRow] = []  # the team's conversation before the current run
        self._stop_reason: str | None = None

    def request_stop(self, reason: str = "shutdown") -> None:
        """End the run in progress at its next turn boundary, after the turn in flight is taken
        and committed: it ends ``stopped`` (stop reason ``STOP_REQUESTED + reason``) and
        :meth:`resume` continues it from there. Used by `alina serve`/`alina worker` on SIGTERM."""
        self._stop_reason = reason

    async def close(self) -> None:
        await self.flush_memory()
        await self.team.close()

    def _after_run(self, result: RunResult) -> None:
        """Hand the finished run to the memory writer, off the run's critical path."""
        if self.memory_writer is None:
            return
        task = asyncio.create_task(self._write_memory(self.memory_writer, result), name="alina-memory-write")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    @staticmethod
    async def _write_memory(writer: Callable[[RunResult], Awaitable[None]], result: RunResult) -> None:
        try:
            await writer(result)
        except Exception as exc:  # memory writes fail open
            logger.warning("run %s: memory not written: %s", result.run_id, _error_text(exc))

    async def flush_memory(self, timeout_s: float = 60.0) -> None:
        """Wait (at most ``timeout_s``) until the memory writes of finished runs are done."""
        if self._writes:
            _done, late = await asyncio.wait(set(self._writes), timeout=timeout_s)
            if late:
                logger.warning("%d memory write(s) still running after %gs; dropped", len(late), timeout_s)
                for task in late:
                    task.cancel()

    async def _log(self, kind: str, run_id: str, payload: dict[str, Any]) -> None:
        """One operational event; never fails the run (a store that is down is logged once)."""
        if self.events is None:
            return
        try:
            await self.events.emit(kind, payload, run_id=run_id)
        except Exception as exc:  # the event log fails open
            if not self._events_warned:
                logger.warning("event log unavailable (%s): run goes on without it", _error_text(exc))
                self._events_warned = True

    async def _log_calls(self, run_id: str) -> None:
        """The model call attempts made since the last call of this method."""
        new, self._calls_logged = self._calls[self._calls_logged :], len(self._calls)
        for c in new:
            await self._log("model_call", run_id, asdict(c))

    def set_mode(self, mode: str) -> None:
        """``safe``: this runner's runs are read-only whatever the shared mode says (a local
        floor, not persisted: ``alina run --mode safe``); ``normal``: the shared mode applies."""
        if mode == "normal":
            self.modes.clear_floor("run")
        else:
            self.modes.raise_floor("run", mode, f"--mode {mode} for this process")
        self.team.router.set_mode(self.modes.router_mode())

    async def run(self, task: str, *, run_id: str | None = None) -> RunResult:
        """Run one task to completion, a limit, or a failure; never raises for model errors
        (a failure to save a turn is reported as a failed run too)."""
        run_id = run_id or uuid.uuid4().hex
        result = RunResult(run_id=run_id, task=task, status="failed", stop_reason="")
        await self.refresh_prompts()
        if self.sink is None:
            return await self._drive(result, task, turn=0, position={})
        await self.sink.create_run(run_id, task, self.config.model_dump(mode="json"))
        async with self.sink.run_lock(run_id):
            return await self._drive(result, task, turn=0, position={})

    async def resume(self, run_id: str) -> RunResult:
        """Continue ``run_id`` from its last checkpoint (or from its task if no turn was saved).

        The team is rebuilt with the system prompts the run was checkpointed with and gets the
        saved state back; counters continue from the checkpoint, the turn limit counts the whole
        run, the wall-time limit applies to this attempt. Raises ResumeError when the run is
        unknown or already completed, and the sink's busy error when another process runs it.
        """
        if self.sink is None:
            raise ResumeError("resuming needs the run store (Postgres): no sink is configured")
        point = await self.sink.resume_point(run_id)
        if point is None:
            raise ResumeError(f"no run with id {run_id!r}; `alina runs list` shows the runs")
        if point.status == "completed":
            raise AlreadyCompleted(f"run {run_id} already completed; nothing to resume")
        async with self.sink.run_lock(run_id):
            await self.sink.reopen_run(run_id)
            metrics.RESUMES.inc()
            self._rebuild(point.prompts)
            task: str | None = point.task
            if point.team_state is not None:
                await self.team.team.load_state(point.team_state)
                task = None
            self._earlier = _thread_messages(point.team_state or {})
            result = RunResult(run_id=run_id, task=point.task, status="failed", stop_reason="")
            result.resumed_from_turn = point.turn
            for name in _POSITION_FIELDS:
                if name in point.position:
                    setattr(result, name, point.position[name])
            result.wall_s = float(point.position.get("wall_s", 0.0))
            logger.info("resuming run %s from turn %d (resume #%d)", run_id, point.turn, point.resumes + 1)
            return await self._drive(result, task, turn=point.turn, position=point.position)

    def cancel(self, reason: str = "cancelled by the user") -> bool:
        """Stop the run being driven (if any) at once: the model call in flight stops at its next
        token, the run is recorded as ``stopped`` with ``reason`` (its finished turns are saved,
        the cut turn's rows kept as partial) and ``run`` returns normally. Returns whether a run
        was going. Call it from the event loop (e.g. a SIGINT handler added with
        ``loop.add_signal_handler``)."""
        if self._token is None or self._token.is_cancelled():
            return False
        self._cancel_reason = reason
        self._token.cancel()
        return True

    async def reset(self) -> None:
        """Forget the conversation: the next ``run`` starts with a fresh team context (the
        recorded runs stay in the store)."""
        await self.team.team.reset()
        self._earlier = []
        self._mandate = None

    async def restore(self, run_id: str) -> int:
        """Give the team the conversation of ``run_id`` as of its last checkpoint (a chat session
        resumed after a restart continues from there); returns the messages restored (0 when the
        run saved no turn). Raises ResumeError when there is no store or no such run."""
        if self.sink is None:
            raise ResumeError("restoring a conversation needs the run store (Postgres)")
        point = await self.sink.resume_point(run_id)
        if point is None:
            raise ResumeError(f"no run with id {run_id!r}; `alina runs list` shows the runs")
        if point.team_state is None:
            return 0
        await self.team.team.load_state(point.team_state)
        self._earlier = _thread_messages(point.team_state)
        return len(self._earlier)

    async def _drive(
        self, result: RunResult, task: str | None, *, turn: int, position: dict[str, Any]
    ) -> RunResult:
        """Take turns until ALINA answers or a limit/failure stops the run; commit every turn."""
        run_id = result.run_id
        committer = None
        if self.sink is not None:
            committer = TurnCommitter(
                self.sink, outage_s=self.config.resilience.store_outage_s, on_store_state=self._store_state
            )
        if self.hot is not None:
            await self.hot.set_run_status(run_id, "running", result.task)
        self._calls_logged = len(self._calls)
        if result.resumed_from_turn is not None:
            await self._log("run_resumed", run_id, {"from_turn": turn, "mode": self.modes.current})
        else:
            await self._log("run_started", run_id, {"mode": self.modes.current})
        self._routing_seen = len(self.team.router.decisions)
        p = _Progress(
            turn=turn,
            seq=int(position.get("message_count", 0)),
            routing_seq=int(position.get("routing_count", 0)),
            calls_seen=len(self._calls),
            wall_before=result.wall_s,
            start=time.monotonic(),
        )
        token = self._token = CancellationToken()
        self._cancel_reason = None
        # The turns run in their own task: a timeout or a cancellation of this one cancels the
        # team's token FIRST, so the model call in flight stops and AutoGen's stream can close
        # (closing it while a call still runs would wait for that call).
        # The tools of this run's turns can read its conversation (the optimizer scores reports):
        # what the team already holds (a resumed run's checkpoint, a chat's earlier tasks) + this.
        earlier = self._earlier
        self._ctx = self._context(result, p, earlier)
        with run_context(self._ctx):
            turns = asyncio.ensure_future(self._take_turns(result, task, p, committer, token))
        try:
            async with asyncio.timeout(self.config.team.wall_time_s):
                await asyncio.shield(turns)
        except asyncio.CancelledError:
            await _stop(turns, token)
            if self._cancel_reason is None or _cancelling():
                raise
            result.status = "stopped"  # cancel(): recorded like any stopped run, then returned
            result.stop_reason = self._cancel_reason
        except TimeoutError:
            await _stop(turns, token)
            result.status = "stopped"
            result.stop_reason = f"wall-time limit of {self.config.team.wall_time_s:g}s reached"
        except Exception as exc:  # a run reports its failure, it does not crash
            token.cancel()
            if self._cancel_reason is not None:  # cancel() surfaced as an error of the turn
                result.status, result.stop_reason = "stopped", self._cancel_reason
            else:
                result.status = "failed"
                result.error = _error_text(exc)
                result.stop_reason = "error"
        self._token = None
        if self._cancel_reason is not None and result.status != "completed":
            result.status, result.stop_reason = "stopped", self._cancel_reason
        self._count_calls(result, p.calls_seen)
        result.mode = self.modes.current
        result.wall_s = p.wall_before + time.monotonic() - p.start
        p.routing_seq = self._take_routing(result, p.pending_routing, p.routing_seq)
        if committer is not None:
            if p.pending or p.pending_routing:
                # The cut turn's rows, without a checkpoint: kept for the record; a resume drops
                # them and redoes the turn from the last checkpoint.
                await self._put_quietly(
                    committer,
                    TurnCommit(
                        run_id,
                        p.turn + 1,
                        list(p.pending),
                        p.pending_routing,
                        {},
                        [],
                        {"message_count": p.seq, "routing_count": p.routing_seq, "partial": True},
                    ),
                )
            try:
                await committer.close()
            except Exception as exc:  # the store went away
                result.status = "failed"
                result.stop_reason = "error"
                result.error = (
                    f"turn not saved ({_error_text(exc)}); the run keeps its last saved turn: "
                    f"fix the database, then `alina run --resume {run_id}`"
                )
            result.checkpoints = committer.written
        metrics.observe_run(result.status, result.turns)
        if self.sink is not None and committer is not None:
            sink = self.sink
            try:  # retried like a turn commit while the store is away
                await committer.call(lambda: sink.finish_run(run_id, result.totals()))
            except Exception as exc:  # keep the result; the run stays resumable
                logger.error("could not record the end of run %s: %s", run_id, exc)
                result.error = result.error or f"end of run not saved: {_error_text(exc)}"
        if self.hot is not None:
            await self.hot.set_run_status(run_id, result.status)
        await self._log_calls(run_id)
        await self._log(
            "run_finished",
            run_id,
            {
                "status": result.status,
                "stop_reason": result.stop_reason,
                "turns": result.turns,
                "model_calls": result.model_calls,
                "cached_calls": result.cached_calls,
                "tool_calls": result.tool_calls,
                "wall_s": round(result.wall_s, 3),
            },
        )
        self._earlier = [*earlier, *result.events]
        self._after_run(result)
        return result
