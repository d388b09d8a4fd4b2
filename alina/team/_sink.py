"""Where a run is recorded: the :class:`RunSink` protocol and the in-process :class:`MemorySink`,
the system-mode gate the run loop needs, and the errors of resuming a run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal, Protocol

from alina.memory_store.checkpoints import MessageRow, ResumePoint, RoutingRow, TurnCommit
from alina.memory_store.runs import RunTotals

Status = Literal["completed", "failed", "stopped"]
STOP_REQUESTED = "stop requested: "
"""Prefix of the stop reason of a run ended by :meth:`TeamRunner.request_stop` (resumable)."""


class ResumeError(Exception):
    """A run cannot be resumed (unknown id, no store): the user must act."""


class AlreadyCompleted(ResumeError):
    """The run to resume has completed (e.g. the process was killed after its last write)."""


class ModeGate(Protocol):
    """The system mode as the run loop needs it (``alina.runtime.modes.SystemMode``)."""

    @property
    def current(self) -> str: ...

    @property
    def blocks_side_effects(self) -> bool: ...

    def router_mode(self) -> Literal["normal", "safe"]: ...

    async def refresh(self) -> Any: ...

    async def escalate(self, mode: str, reason: str, *, actor: str, run_id: str | None = None) -> bool: ...

    def raise_floor(self, key: str, mode: str, reason: str) -> None: ...

    def clear_floor(self, key: str) -> None: ...


class RunSink(Protocol):
    """Where runs are recorded (``alina.memory_store.RunStore`` in production, :class:`MemorySink`
    in notebooks and tests). Only whole turns are written (``commit_turn``)."""

    async def create_run(self, run_id: str, task: str, config_json: dict[str, Any]) -> None: ...

    async def commit_turn(self, commit: TurnCommit) -> None: ...

    async def finish_run(self, run_id: str, totals: RunTotals) -> None: ...

    async def resume_point(self, run_id: str) -> ResumePoint | None: ...

    async def reopen_run(self, run_id: str) -> None: ...

    def run_lock(self, run_id: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class MemorySink:
    """An in-process :class:`RunSink` (no database): keeps runs, commits and checkpoints in dicts."""

    def __init__(self) -> None:
        self.runs: dict[str, dict[str, Any]] = {}
        self.commits: list[TurnCommit] = []
        self._locked: set[str] = set()

    async def create_run(self, run_id: str, task: str, config_json: dict[str, Any]) -> None:
        if run_id in self.runs:
            raise ValueError(f"run {run_id} exists")
        self.runs[run_id] = {"id": run_id, "task": task, "status": "running", "resumes": 0}

    async def commit_turn(self, commit: TurnCommit) -> None:
        self.commits.append(commit)

    async def finish_run(self, run_id: str, totals: RunTotals) -> None:
        t = totals
        self.runs[run_id].update(
            status=t.status, turns=t.turns, model_calls=t.model_calls, tool_calls=t.tool_calls, error=t.error
        )

    def routing(self, run_id: str) -> list[RoutingRow]:
        return [r for c in self.commits if c.run_id == run_id for r in c.routing]

    def messages(self, run_id: str) -> list[MessageRow]:
        return [m for c in self.commits if c.run_id == run_id for m in c.messages]

    async def resume_point(self, run_id: str) -> ResumePoint | None:
        run = self.runs.get(run_id)
        if run is None:
            return None
        done = [c for c in self.commits if c.run_id == run_id and c.is_checkpoint]
        last = done[-1] if done else None
        return ResumePoint(
            run_id,
            run["task"],
            run["status"],
            run["resumes"],
            last.turn if last else 0,
            last.team_state if last else None,
            {p.agent: p for p in last.prompts} if last else {},
            dict(last.position) if last else {},
        )

    async def reopen_run(self, run_id: str) -> None:
        point = await self.resume_point(run_id)
        keep_m = int(point.position.get("message_count", 0)) if point else 0
        keep_r = int(point.position.get("routing_count", 0)) if point else 0
        for c in self.commits:  # drop the rows of a partial last turn, as RunStore does
            if c.run_id == run_id:
                c.messages = [m for m in c.messages if m.seq <= keep_m]
                c.routing = [r for r in c.routing if r.seq <= keep_r]
        self.runs[run_id].update(status="running", resumes=self.runs[run_id]["resumes"] + 1)

    @contextlib.asynccontextmanager
    async def run_lock(self, run_id: str) -> AsyncIterator[None]:
        if run_id in self._locked:
            raise RuntimeError(f"run {run_id} is being executed right now")
        self._locked.add(run_id)
        try:
            yield
        finally:
            self._locked.discard(run_id)


RunEvent = MessageRow
"""One message or event of a run, as printed and stored (the row a turn commit writes)."""
