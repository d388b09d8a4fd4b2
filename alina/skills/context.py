"""The run a tool is called in: what the run loop tells the skills, and nothing the model says.

The run loop opens :func:`run_context` around a run's turns; tools called inside it (and in tasks
started inside it, as AutoGen's tool calls are) read :func:`current_run_context`:

* ``task`` and ``messages()``: the user's request and the conversation so far (the optimizer
  scores reports without the model copying them into arguments);
* ``mandate``: the order actions the *user's request* allows (:class:`~alina.trading.mandate.Mandate`),
  fixed when the run starts, so nothing a tool returns or a memory recalls can widen it;
* ``side_effect_refusal()``: why side effects are refused right now (safe or halt mode), or None;
* :meth:`RunContext.request_id`: a deterministic id for the n-th side-effect call of the current
  turn. A resumed run redoes its cut turn with the same run id and turn number, so the same
  call gets the same id and the order intent of the first attempt is reused, never sent twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from alina.trading.mandate import Mandate

__all__ = ["ChatMessage", "RunContext", "current_run_context", "run_context"]


class ChatMessage(Protocol):
    """A message of the run as tools see it."""

    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def content(self) -> str: ...


def _never_refused() -> str | None:
    return None


@dataclass
class RunContext:
    """One run, as its tools see it (see the module docstring)."""

    task: str
    messages: Callable[[], Sequence[ChatMessage]] = lambda: ()
    run_id: str | None = None
    turn: Callable[[], int] = lambda: 0
    mandate: Mandate = field(default_factory=Mandate.none)
    side_effect_refusal: Callable[[], str | None] = _never_refused
    answer_checks: list[Any] = field(default_factory=list)
    """Checks of ALINA's answers made during the run (``alina.team``'s answer checker), in order."""
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Structured tool results of the run (:class:`~alina.skills._contract.ToolOutput` data,
    secrets masked) by the id the model gave each call; the run's memory reads facts from them."""
    _calls: dict[int, int] = field(default_factory=dict, repr=False)

    def request_id(self, kind: str) -> str | None:
        """``RUN:tTURN:cN:KIND`` for the N-th side-effect call of this turn (None outside a run).

        Calls are numbered in the order they start; AutoGen starts a turn's tool calls in the
        order the model listed them, so a redone turn numbers them the same way."""
        if self.run_id is None:
            return None
        turn = self.turn()
        n = self._calls.get(turn, 0)
        self._calls[turn] = n + 1
        return f"{self.run_id}:t{turn}:c{n}:{kind}"


_CONTEXT: ContextVar[RunContext | None] = ContextVar("alina_run_context", default=None)


@contextmanager
def run_context(ctx: RunContext) -> Iterator[RunContext]:
    """Make ``ctx`` the run of every tool called inside this block and the tasks it starts."""
    token = _CONTEXT.set(ctx)
    try:
        yield ctx
    finally:
        _CONTEXT.reset(token)


def current_run_context() -> RunContext | None:
    """The innermost :func:`run_context`, or None outside a run (a notebook calling a skill)."""
    return _CONTEXT.get()
