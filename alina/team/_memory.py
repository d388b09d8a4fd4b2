"""What a finished run leaves in memory: embedded memories for retrieval, and graph facts.

:class:`RunMemoryWriter` is :class:`~alina.team.TeamRunner`'s ``memory_writer``: the runner calls
it with the :class:`~alina.team.RunResult` once a run (or a resumed attempt) has finished, in a
background task, so the run never waits for it. From the run's events it derives

* vector memories (:func:`run_memories`): the outcome (task, status, answer) in scope
  ``shared``, and each specialist's report in that specialist's scope (kind ``note``; a report
  on an order is a ``decision``, a degraded health report an ``alert``), each with its run id and
  message seq. Ids are derived from the run and message, so writing a run twice replaces;
* graph facts (:func:`run_facts`): the run, the agents that spoke and their models, ``agent used
  tool`` per tool call (arguments, secrets masked), ``agent observed asset`` when a tool's
  arguments (or, failing that, its result) name a pair like BTC/USDT, ``trader decided asset``
  for an order, ``monitor observed alert`` for a degraded health report and ``alina decided
  run`` for the answer; ``alert caused run`` (or ``asset``/``agent caused run``) when a step the
  task made conditional ("if healthy, ...") was skipped because of that report; ``alina
  contradicted monitor`` (``trader``) when the answer names a health (trend) state other than
  the one the specialist's latest report named. Each fact carries run id and message seq;
  recording is idempotent. Routing decisions of a resumed run's earlier attempts are not
  re-read, so a skip decided before the cut leaves no ``caused`` fact.

Both writes fail open: an error is logged and counted (``alina_memory_writes_total``) and the
other write still happens. :func:`open_memory` opens the configured vector memory, or returns
None (logged once) when Chroma or the embedding model cannot be used: runs go on without RAG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alina.config import SPECIALISTS, AlinaConfig
from alina.memory_store.embeddings import Embedder
from alina.memory_store.graph import MemoryGraph
from alina.memory_store.vector import SHARED, MemoryItem, VectorMemory
from alina.monitoring.memory_metrics import observe_contradiction, observe_memory_write, set_memory_available
from alina.team._facts import (
    MAX_MEMORY_CHARS,
    ORDER_TOOLS,
    EventLike,
    RunLike,
    StoredEvent,
    ToolUse,
    alerts_of,
    contradictions,
    last_answer,
    one_line,
    reporters,
    run_facts,
    tool_uses,
)
from alina.team._routing import RouteDecision

__all__ = [
    "RunMemoryWriter",
    "ToolUse",
    "open_memory",
    "run_facts",
    "run_memories",
    "tool_uses",
]

log = logging.getLogger(__name__)


def run_memories(run: RunLike, *, specialists: Sequence[str] = SPECIALISTS) -> list[MemoryItem]:
    """The memories ``run`` leaves for retrieval: its outcome (shared; only when its answer
    passed the fact check, or was not checked) and each specialist's report (in that
    specialist's scope), with provenance. Ids: ``RUN-outcome``, ``RUN-SEQ``."""
    rid = run.run_id
    events = list(run.events)
    uses = tool_uses(events, run.tool_data)
    items: list[MemoryItem] = []
    task = one_line(run.task, 200)
    for e in events:
        if e.type != "ToolCallSummaryMessage" or e.source not in specialists or not e.content.strip():
            continue
        tools = [u for u in uses if u.agent == e.source and u.result_seq is not None and u.result_seq < e.seq]
        last = [u for u in tools if u.call_seq == tools[-1].call_seq] if tools else []
        kind = "note"
        if any(u.tool in ORDER_TOOLS for u in last):
            kind = "decision"
        elif any(alerts_of(u) for u in last):
            kind = "alert"
        text = one_line(f"{e.source} on '{task}': {e.content}", MAX_MEMORY_CHARS)
        extra: dict[str, str | int | float | bool] = {"agent": e.source}
        if last:
            extra["tools"] = ",".join(dict.fromkeys(u.tool for u in last))
        items.append(MemoryItem(text, kind, e.source, rid, e.seq, id=f"{rid}-{e.seq}", extra=extra))
    answer = last_answer(events)
    outcome = run.answer.strip() or (answer.content.strip() if answer else "")
    check = getattr(run, "answer_check", None)
    if check is not None and check.get("outcome") not in ("passed", "regenerated"):
        return items  # only answers that passed the fact check become outcomes to recall
    if outcome or events:
        result = outcome or f"no answer ({run.stop_reason or 'stopped'})"
        text = one_line(f"Task: {task} | Outcome ({run.status}): {result}", MAX_MEMORY_CHARS)
        seq = answer.seq if answer is not None else (events[-1].seq if events else None)
        items.append(
            MemoryItem(text, "outcome", SHARED, rid, seq, id=f"{rid}-outcome", extra={"status": run.status})
        )
    return items


class _RunStoreLike(Protocol):
    async def get_run(self, run_id: str) -> dict[str, Any] | None: ...


class RunMemoryWriter:
    """Writes what a finished run leaves in memory (see the module docstring); fails open.

    ``memory`` receives the vector memories (None: none written), ``graph`` the facts (None:
    none recorded). ``store`` lets a resumed run include the messages of its earlier attempts
    (the runner's result holds only the last attempt's events). ``models`` maps each agent to
    its model's name (graph facts ``agent used model``).
    """

    def __init__(
        self,
        memory: VectorMemory | None,
        graph: MemoryGraph | None,
        *,
        store: _RunStoreLike | None = None,
        models: Mapping[str, str] | None = None,
        specialists: Sequence[str] = SPECIALISTS,
        reporting: Mapping[str, str] | None = None,
    ) -> None:
        """``reporting``: report domain -> the agent whose report decides it (default: the
        shipped prompt files' ``reports``)."""
        self.memory = memory
        self.graph = graph
        self.store = store
        self.models = dict(models or {})
        self.specialists = tuple(specialists)
        self.reporting = dict(reporters() if reporting is None else reporting)
        self.written = 0
        """Vector memories written so far."""
        self.recorded = 0
        """Graph relations recorded so far (new ones only)."""
        self.errors: list[str] = []

    @classmethod
    def from_config(
        cls,
        config: AlinaConfig,
        *,
        memory: VectorMemory | None,
        graph: MemoryGraph | None,
        store: _RunStoreLike | None = None,
    ) -> RunMemoryWriter:
        """The writer ``config.memory`` asks for (``write`` / ``graph`` switch each part off)."""
        enabled = config.memory.enabled
        models = {name: config.model_for(name).model for name in config.agents}
        return cls(
            memory if enabled and config.memory.write else None,
            graph if enabled and config.memory.graph else None,
            store=store,
            models=models,
            reporting=reporters({name: a.prompt or name for name, a in config.agents.items()}),
        )

    async def __call__(self, run: RunLike) -> None:
        """Write ``run``'s memories and facts (both concurrently); never raises an Exception."""
        try:
            view = await self._with_history(run)
        except Exception as exc:  # fall back to the events at hand
            log.warning(
                "earlier messages of run %s not read (%s); using this attempt's only", run.run_id, exc
            )
            view = run
        self._count_contradictions(view)
        await asyncio.gather(self._write_vectors(view), self._record_graph(view))

    def _count_contradictions(self, run: RunLike) -> None:
        """``alina_answer_contradictions_total``, whether or not the graph is recorded."""
        try:
            answer = last_answer(run.events)
            for fact in contradictions(run, answer, self.reporting) if answer is not None else []:
                observe_contradiction(fact.dst[1])
        except Exception as exc:  # a metric never fails the write
            log.debug("run %s: contradictions not counted: %s", run.run_id, exc)

    async def _with_history(self, run: RunLike) -> RunLike:
        if self.store is None or getattr(run, "resumed_from_turn", None) is None:
            return run
        stored = await self.store.get_run(run.run_id)
        have = {e.seq for e in run.events}
        events: list[EventLike] = [
            StoredEvent(int(m["seq"]), str(m["source"]), str(m["type"]), str(m["content"]))
            for m in (stored or {}).get("messages", [])
            if int(m["seq"]) not in have
        ]
        events = sorted([*events, *run.events], key=lambda e: e.seq)
        data = {**(stored or {}).get("tool_data", {}), **run.tool_data}  # earlier attempts' too
        return _View(run.run_id, run.task, run.status, run.stop_reason, run.answer, events, run.routing, data)

    async def _write_vectors(self, run: RunLike) -> None:
        if self.memory is None:
            return
        try:
            items = run_memories(run, specialists=self.specialists)
            await self.memory.add_many(items)
        except Exception as exc:  # fail open
            self._failed("vectors", run, exc)
            return
        self.written += len(items)
        observe_memory_write("vectors", True, len(items))

    async def _record_graph(self, run: RunLike) -> None:
        if self.graph is None:
            return
        try:
            facts = run_facts(run, models=self.models, reporting=self.reporting)
            attrs: dict[tuple[str, str], dict[str, object]] = {
                ("run", run.run_id): {"task": one_line(run.task, 200), "status": run.status}
            }
            added = await self.graph.record(facts, attrs=attrs)
        except Exception as exc:  # fail open
            self._failed("graph", run, exc)
            return
        self.recorded += added
        observe_memory_write("graph", True, added)

    def _failed(self, store: str, run: RunLike, exc: Exception) -> None:
        observe_memory_write(store, False)
        message = f"{store}: {type(exc).__name__}: {exc}"
        if not self.errors:
            log.warning(
                "run %s: what it leaves in memory was not written (%s); the run itself is kept",
                run.run_id,
                message,
            )
        else:
            log.debug("run %s: memory write failed again: %s", run.run_id, message)
        self.errors.append(message)


@dataclass(frozen=True)
class _View:
    run_id: str
    task: str
    status: str
    stop_reason: str
    answer: str
    events: Sequence[EventLike]
    routing: Sequence[RouteDecision]
    tool_data: Mapping[str, Mapping[str, Any]]


async def open_memory(
    config: AlinaConfig, *, embedder: Embedder | None = None, client: Any = None
) -> VectorMemory | None:
    """The configured vector memory, opened (collections created, embedding model loaded), or
    None when ``memory.enabled`` is false or it cannot be used: Chroma cannot open, the
    embedding model cannot load. Never raises an Exception; a failure is logged once and
    ``alina_memory_available`` is 0 — the team then runs without retrieval."""
    if not config.memory.enabled:
        return None
    memory: VectorMemory | None = None
    try:
        memory = VectorMemory(config.memory, embedder=embedder, base_dir=config.data_dir(), client=client)
        await memory.open()
    except Exception as exc:  # fail open
        where = memory.location() if memory is not None else "chroma"
        log.warning(
            "memory (RAG) unavailable, runs go on without retrieval: %s: %s (%s)",
            type(exc).__name__,
            one_line(str(exc), 300),
            where,
        )
        set_memory_available(False)
        if memory is not None:
            try:
                await memory.close()
            except Exception as close_exc:
                log.debug("closing the failed memory: %s", close_exc)
        return None
    set_memory_available(True)
    return memory
