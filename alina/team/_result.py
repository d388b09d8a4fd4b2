"""What a run produces (:class:`RunResult`) and where the run loop stands (``_Progress``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from alina.memory_store.checkpoints import MessageRow, RoutingRow
from alina.memory_store.runs import RunTotals
from alina.team._routing import RouteDecision
from alina.team._sink import RunEvent, Status


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
    answer_check: dict[str, Any] | None = None
    """The check of the final answer: grounded, complete, consistent, findings, outcome
    (passed | regenerated | digest)."""
    error: str | None = None
    mode: str = "normal"
    """The system mode the run ended in (``safe``/``halt``: it could place no order)."""
    resumed_from_turn: int | None = None
    """Set by ``resume()``: the checkpoint this attempt started from (events hold only this attempt)."""
    checkpoints: int = 0
    """Turn commits written by this attempt."""
    events: list[RunEvent] = field(default_factory=list)
    routing: list[RouteDecision] = field(default_factory=list)
    tool_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Structured tool results of this attempt (``ToolOutput`` data, secrets masked) by the id
    the model gave each call (the ``id`` in the stored ToolCallRequestEvent)."""

    def totals(self) -> RunTotals:
        """How the run ended and what it cost, as the run store records it."""
        return RunTotals(
            self.status,
            self.turns,
            self.model_calls,
            self.tool_calls,
            self.prompt_tokens,
            self.completion_tokens,
            self.wall_s,
            self.error,
        )

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
            "mode": self.mode,
            "answer_check": self.answer_check,
            "resumed_from_turn": self.resumed_from_turn,
            "checkpoints": self.checkpoints,
            "messages": [{"source": e.source, "type": e.type, "content": e.content} for e in self.events],
            "routing": [asdict(d) for d in self.routing],
        }


# Counters carried in every checkpoint's ``position`` and restored by ``resume()``.
_POSITION_FIELDS = (
    "turns",
    "model_calls",
    "cached_calls",
    "tool_calls",
    "prompt_tokens",
    "completion_tokens",
    "answer",
)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else repr(exc)


@dataclass
class _Progress:
    """Where the run loop stands: shared by the turn task and the code that ends the run."""

    turn: int
    seq: int
    routing_seq: int
    calls_seen: int
    wall_before: float
    start: float
    pending: list[RunEvent] = field(default_factory=list)
    """This turn's events, not committed yet."""
    pending_routing: list[RoutingRow] = field(default_factory=list)


def _thread_messages(state: Mapping[str, Any]) -> list[MessageRow]:
    """The chat messages (text content) in a team state: its group chat manager's thread."""
    for agent_state in state.get("agent_states", {}).values():
        if isinstance(agent_state, Mapping) and "message_thread" in agent_state:
            return [
                MessageRow(0, str(m.get("source", "")), str(m.get("type", "")), m["content"])
                for m in agent_state["message_thread"]
                if isinstance(m, Mapping) and isinstance(m.get("content"), str)
            ]
    return []
