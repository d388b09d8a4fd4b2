"""The run loop: drive the team, stream its events, persist every message, summarise.

``TeamRunner`` owns one team. ``run(task)`` is one task (``alina run``); calling it again
continues the same conversation (``alina chat`` follow-ups). Each call is one row in ``runs``
and every message/event one row in ``messages``, written as it happens.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from autogen_agentchat.base import TaskResult
from autogen_agentchat.messages import (
    BaseAgentEvent,
    BaseChatMessage,
    ToolCallExecutionEvent,
    ToolCallRequestEvent,
)
from autogen_core import CancellationToken
from autogen_core.models import ChatCompletionClient

from alina.config import ORCHESTRATOR, AlinaConfig
from alina.memory_store.hot import HotState
from alina.models import CallRecord
from alina.monitoring import metrics
from alina.team._routing import Mode, RouteDecision
from alina.team._team import AlinaTeam, build_team

Status = Literal["completed", "failed", "stopped"]


class RunSink(Protocol):
    """Where runs are recorded (``alina.memory_store.RunStore`` in production).

    A sink may also have ``add_routing_decision(run_id, seq, speaker, method, confidence,
    candidates, reason)``; when it does, every routing decision of the run is written to it.
    """

    async def create_run(self, run_id: str, task: str, config_json: dict[str, Any]) -> None: ...

    async def add_message(
        self,
        run_id: str,
        seq: int,
        source: str,
        type: str,
        content: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        latency_ms: float | None,
    ) -> None: ...

    async def finish_run(
        self,
        run_id: str,
        status: str,
        turns: int,
        model_calls: int,
        tool_calls: int,
        prompt_tokens: int,
        completion_tokens: int,
        wall_s: float,
        error: str | None,
    ) -> None: ...


@dataclass
class RunEvent:
    """One message or event of a run, as printed and stored."""

    seq: int
    source: str
    type: str
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None


@dataclass
class RunResult:
    run_id: str
    task: str
    status: Status
    stop_reason: str
    turns: int = 0
    model_calls: int = 0
    cached_calls: int = 0
    """Model calls answered from the response cache (no tokens spent; not in model_calls)."""
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    answer: str = ""
    error: str | None = None
    events: list[RunEvent] = field(default_factory=list)
    routing: list[RouteDecision] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``alina run --json`` object."""
        return {
            "run_id": self.run_id,
            "task": self.task,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "turns": self.turns,
            "model_calls": self.model_calls,
            "cached_calls": self.cached_calls,
            "tool_calls": self.tool_calls,
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "wall_s": round(self.wall_s, 3),
            "answer": self.answer,
            "error": self.error,
            "messages": [{"source": e.source, "type": e.type, "content": e.content} for e in self.events],
            "routing": [asdict(d) for d in self.routing],
        }


def _content(item: BaseAgentEvent | BaseChatMessage) -> str:
    if isinstance(item, ToolCallRequestEvent):
        return json.dumps([{"name": c.name, "arguments": c.arguments} for c in item.content])
    if isinstance(item, ToolCallExecutionEvent):
        return "\n".join(f"{r.name}: {r.content}" for r in item.content)
    return item.to_text()


class TeamRunner:
    """Runs tasks on one ALINA team and records them."""

    def __init__(
        self,
        config: AlinaConfig,
        *,
        sink: RunSink | None = None,
        clients: dict[str, ChatCompletionClient] | None = None,
        on_event: Callable[[RunEvent], None] | None = None,
        hot: HotState | None = None,
        mode: Mode = "normal",
    ) -> None:
        self.config = config
        self.sink = sink
        self.hot = hot
        self.on_event = on_event
        self._calls: list[CallRecord] = []
        self.team: AlinaTeam = build_team(config, clients=clients, listener=self._calls.append, mode=mode)
        for client in self.team.clients.values():  # injected clients may be ResilientClients too
            if getattr(client, "listener", "absent") is None:
                client.listener = self._calls.append  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.team.close()

    def set_mode(self, mode: str) -> None:
        """Switch the router between ``normal`` and ``safe`` (no order reaches the trader)."""
        self.team.router.set_mode(mode)

    async def run(self, task: str, *, run_id: str | None = None) -> RunResult:
        """Run one task to completion, a limit, or a failure; never raises for model errors."""
        run_id = run_id or uuid.uuid4().hex
        result = RunResult(run_id=run_id, task=task, status="failed", stop_reason="")
        calls_before = len(self._calls)
        routing_before = len(self.team.router.decisions)
        if self.sink is not None:
            await self.sink.create_run(run_id, task, self.config.model_dump(mode="json"))
        if self.hot is not None:
            await self.hot.set_run_status(run_id, "running", task)
        start = last = time.monotonic()
        token = CancellationToken()
        try:
            async with asyncio.timeout(self.config.team.wall_time_s):
                async for item in self.team.team.run_stream(task=task, cancellation_token=token):
                    if isinstance(item, TaskResult):
                        result.stop_reason = item.stop_reason or ""
                        continue
                    now = time.monotonic()
                    await self._record(result, item, latency_ms=(now - last) * 1000)
                    await self._record_routing(result, routing_before)
                    last = now
            last_source = result.events[-1].source if result.events else ""
            result.status = "completed" if last_source == ORCHESTRATOR else "stopped"
        except TimeoutError:
            token.cancel()
            result.status = "stopped"
            result.stop_reason = f"wall-time limit of {self.config.team.wall_time_s:g}s reached"
        except Exception as exc:  # noqa: BLE001 - a run reports its failure, it does not crash
            result.status = "failed"
            result.error = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else repr(exc)
            result.stop_reason = "error"
        result.wall_s = time.monotonic() - start
        calls = [c for c in self._calls[calls_before:] if c.outcome != "cached"]
        result.cached_calls = len(self._calls) - calls_before - len(calls)
        result.model_calls = len(calls)
        result.prompt_tokens = sum(c.prompt_tokens for c in calls)
        result.completion_tokens = sum(c.completion_tokens for c in calls)
        await self._record_routing(result, routing_before)
        metrics.observe_run(result.status, result.turns)
        if self.sink is not None:
            await self.sink.finish_run(
                run_id,
                result.status,
                result.turns,
                result.model_calls,
                result.tool_calls,
                result.prompt_tokens,
                result.completion_tokens,
                result.wall_s,
                result.error,
            )
        if self.hot is not None:
            await self.hot.set_run_status(run_id, result.status)
        return result

    async def _record_routing(self, result: RunResult, routing_before: int) -> None:
        """Move the router's new decisions into the result and the sink (seq 1.. per run)."""
        new = self.team.router.decisions[routing_before + len(result.routing) :]
        write = getattr(self.sink, "add_routing_decision", None)
        for d in new:
            result.routing.append(d)
            if write is not None:
                await write(
                    result.run_id, len(result.routing), d.speaker, d.method, d.confidence,
                    list(d.candidates), d.reason,
                )  # fmt: skip

    async def _record(
        self, result: RunResult, item: BaseAgentEvent | BaseChatMessage, latency_ms: float
    ) -> None:
        usage = getattr(item, "models_usage", None)
        event = RunEvent(
            seq=len(result.events) + 1,
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
        if self.sink is not None:
            await self.sink.add_message(
                result.run_id,
                event.seq,
                event.source,
                event.type,
                event.content,
                event.prompt_tokens,
                event.completion_tokens,
                event.latency_ms,
            )
        if self.on_event is not None:
            self.on_event(event)
