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
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.memory_store.embeddings import Embedder
from alina.memory_store.graph import MemoryGraph, Relation
from alina.memory_store.vector import SHARED, MemoryItem, VectorMemory
from alina.monitoring.memory_metrics import observe_contradiction, observe_memory_write, set_memory_available
from alina.skills.context import ChatMessage
from alina.team._routing import REPORTERS, RouteDecision, report_states

__all__ = [
    "RunMemoryWriter",
    "ToolUse",
    "open_memory",
    "run_facts",
    "run_memories",
    "tool_uses",
]

log = logging.getLogger(__name__)

MAX_MEMORY_CHARS = 600
"""A stored memory's text is cut here: retrieved memories go into every prompt of a CPU model."""
MAX_FACT_CHARS = 240
ORDER_TOOLS = frozenset({"place_order"})
HEALTH_TOOLS = frozenset({"system_health"})
_PAIR = re.compile(r"\b([A-Z0-9]{2,12}/[A-Z0-9]{2,12}(?::[A-Z0-9]{2,12})?)\b")
_PAIR_ARG = re.compile(r"^[A-Za-z0-9]{2,12}/[A-Za-z0-9]{2,12}(?::[A-Za-z0-9]{2,12})?$")
_DEGRADED = re.compile(r"^degraded \((?P<reasons>[^)]*)\)")


class EventLike(ChatMessage, Protocol):
    """One recorded message or event of a run (:class:`~alina.team.RunEvent`): a chat message
    with its place in the run."""

    @property
    def seq(self) -> int: ...


class RunLike(Protocol):
    """What the writer reads of a finished run (:class:`~alina.team.RunResult`)."""

    @property
    def run_id(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def stop_reason(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def events(self) -> Sequence[EventLike]: ...
    @property
    def routing(self) -> Sequence[RouteDecision]: ...


@dataclass(frozen=True)
class _Event:
    seq: int
    source: str
    type: str
    content: str


@dataclass(frozen=True)
class ToolUse:
    """One tool call of a run: who called what with which arguments, what came back, and the
    seqs of the request (``call_seq``) and result (``result_seq``) events."""

    agent: str
    tool: str
    arguments: dict[str, Any]
    result: str | None
    call_seq: int
    result_seq: int | None

    @property
    def failed(self) -> bool:
        return self.result is None or self.result.startswith("error")


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _split_results(content: str, names: Sequence[str]) -> list[str | None]:
    """A ToolCallExecutionEvent's text (``name: result`` per call, joined by newlines) back
    into one result per call, in order."""
    out: list[str | None] = []
    rest = content
    for i, name in enumerate(names):
        prefix = f"{name}: "
        if not rest.startswith(prefix):
            out.append(None)
            continue
        rest = rest[len(prefix) :]
        nxt = names[i + 1] if i + 1 < len(names) else None
        cut = rest.find(f"\n{nxt}: ") if nxt is not None else -1
        out.append(rest if cut < 0 else rest[:cut])
        rest = "" if cut < 0 else rest[cut + 1 :]
    return out


def tool_uses(events: Sequence[EventLike]) -> list[ToolUse]:
    """The tool calls of a run, from its ToolCallRequestEvent / ToolCallExecutionEvent pairs."""
    pending: dict[str, tuple[int, list[tuple[str, dict[str, Any]]]]] = {}
    out: list[ToolUse] = []
    for e in events:
        if e.type == "ToolCallRequestEvent":
            try:
                calls = json.loads(e.content)
            except json.JSONDecodeError:
                continue
            parsed: list[tuple[str, dict[str, Any]]] = []
            for c in calls if isinstance(calls, list) else []:
                if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                    continue
                args: Any = c.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        args = {"raw": args}
                parsed.append((c["name"], args if isinstance(args, dict) else {"value": args}))
            pending[e.source] = (e.seq, parsed)
        elif e.type == "ToolCallExecutionEvent" and e.source in pending:
            call_seq, parsed = pending.pop(e.source)
            results = _split_results(e.content, [name for name, _ in parsed])
            out += [ToolUse(e.source, name, args, result, call_seq, e.seq)
                    for (name, args), result in zip(parsed, results, strict=True)]  # fmt: skip
    for agent, (call_seq, parsed) in pending.items():  # calls whose result never came (cut run)
        out += [ToolUse(agent, name, args, None, call_seq, None) for name, args in parsed]
    return sorted(out, key=lambda u: u.call_seq)


def symbols_of(use: ToolUse) -> list[str]:
    """The trading pairs a tool call is about: named in its arguments, else the pair its result
    starts with (market tools report ``BTC/USDT last price ...`` when the symbol was defaulted)."""
    found = [v.strip().upper() for v in use.arguments.values()
             if isinstance(v, str) and _PAIR_ARG.match(v.strip())]  # fmt: skip
    if not found and use.result and not use.failed:
        lead = _PAIR.match(use.result.strip())
        found = [lead.group(1)] if lead else []
    return list(dict.fromkeys(found))[:5]


def _alerts(result: str) -> list[tuple[str, str]]:
    """``(alert name, reason)`` for each reason of a degraded health report."""
    m = _DEGRADED.match(result)
    if m is None:
        return []
    out = []
    for reason in (r.strip() for r in m.group("reasons").split(";")):
        if not reason:
            continue
        name = (
            "memory-high" if reason.startswith("memory")
            else "latency-high" if " p95 " in f" {reason} "
            else "load-high" if reason.startswith("load")
            else "health-degraded"
        )  # fmt: skip
        out.append((name, reason))
    return out


def _masked(arguments: dict[str, Any]) -> dict[str, Any]:
    from alina.skills.recorder import mask_secrets

    return mask_secrets(arguments)


def run_facts(run: RunLike, *, models: Mapping[str, str] | None = None) -> list[Relation]:
    """The graph facts of ``run`` (see the module docstring), each with run id and message seq."""
    rid = run.run_id
    run_ref = ("run", rid)
    facts: list[Relation] = []
    first: dict[str, int] = {}
    for e in run.events:
        if e.source != "user" and e.source not in first:
            first[e.source] = e.seq
    for name, first_seq in first.items():
        facts.append(Relation(run_ref, "used", ("agent", name), None, rid, first_seq))
        if models and name in models:
            facts.append(Relation(("agent", name), "used", ("model", models[name]), None, rid, first_seq))
    for use in tool_uses(run.events):
        agent = ("agent", use.agent)
        args = json.dumps(_masked(use.arguments), sort_keys=True, ensure_ascii=False)
        facts.append(Relation(agent, "used", ("tool", use.tool), _one_line(args, MAX_FACT_CHARS), rid,
                              use.call_seq))  # fmt: skip
        strategy = use.arguments.get("strategy")
        if isinstance(strategy, str) and strategy.strip():
            facts.append(Relation(agent, "used", ("strategy", strategy.strip()), None, rid, use.call_seq))
        if use.result is None:
            continue
        seq = use.result_seq
        result = _one_line(use.result, MAX_FACT_CHARS)
        for symbol in symbols_of(use):
            if use.tool in ORDER_TOOLS:
                order = " ".join(str(use.arguments[k]) for k in ("side", "amount", "order_type")
                                 if k in use.arguments)  # fmt: skip
                fact = f"order {order}: {result}" if order else f"order: {result}"
                facts.append(Relation(agent, "decided", ("asset", symbol), _one_line(fact, MAX_FACT_CHARS),
                                      rid, seq))  # fmt: skip
            elif not use.failed:
                facts.append(Relation(agent, "observed", ("asset", symbol), result, rid, seq))
        if use.tool in HEALTH_TOOLS:
            for name, reason in _alerts(use.result):
                facts.append(Relation(agent, "observed", ("alert", name), reason, rid, seq))
    facts += _causes(run)
    answer = _answer(run.events)
    if answer is not None:
        facts.append(Relation(("agent", ORCHESTRATOR), "decided", run_ref,
                              _one_line(answer.content, MAX_FACT_CHARS), rid, answer.seq))  # fmt: skip
        facts += _contradictions(run, answer)
    return list(dict.fromkeys(facts))


def _answer(events: Sequence[EventLike]) -> EventLike | None:
    """ALINA's final answer: its last text message."""
    return next((e for e in reversed(events) if e.source == ORCHESTRATOR and e.type == "TextMessage"), None)


_REPORT_TYPES = frozenset({"ToolCallSummaryMessage", "TextMessage"})


def _latest_report(events: Sequence[EventLike], agent: str, domain: str, before: int | None = None
                   ) -> tuple[EventLike, list[str]] | None:  # fmt: skip
    """``agent``'s latest report (before seq ``before``) that names a state of ``domain``."""
    for e in reversed(events):
        if e.source != agent or e.type not in _REPORT_TYPES or (before is not None and e.seq >= before):
            continue
        states = report_states(e.content, domain)
        if states:
            return e, states
    return None


def _causes(run: RunLike) -> list[Relation]:
    """``X caused run``: a step the task made conditional ("if healthy, ...") was skipped
    because a report did not show the condition. X is what the report is about: each alert of a
    degraded health report, the asset of a trend report, else the reporting agent."""
    facts: list[Relation] = []
    for decision in run.routing:
        for skip in decision.skipped:
            found = _latest_report(run.events, skip.on, skip.domain)
            if found is None:
                continue
            report, states = found
            causes: list[tuple[str, str]] = [("alert", name) for name, _ in _alerts(report.content)]
            if not causes and skip.domain == "trend":
                causes = [("asset", m.group(1)) for m in _PAIR.finditer(report.content)][:5]
            fact = (f"skipped the {skip.agent}: the task wanted it only if {skip.condition}; the {skip.on}'s "
                    f"report says {states[0]}")  # fmt: skip
            for cause in causes or [("agent", skip.on)]:
                facts.append(Relation(cause, "caused", ("run", run.run_id), fact, run.run_id, report.seq))
    return facts


def _contradictions(run: RunLike, answer: EventLike) -> list[Relation]:
    """``alina contradicted AGENT``: the answer names one health (or trend) state and the
    monitor's (trader's) latest report before it names one other state. A text naming several
    states ("healthy, though memory was degraded earlier") is ambiguous and never counts."""
    facts: list[Relation] = []
    for domain, agent in REPORTERS.items():
        said = report_states(answer.content, domain)
        found = _latest_report(run.events, agent, domain, before=answer.seq)
        if len(said) != 1 or found is None or len(found[1]) != 1 or found[1] == said:
            continue
        report, (state,) = found
        fact = f"the answer says {said[0]}; the {agent}'s report (#{report.seq}) says {state}"
        facts.append(Relation(("agent", ORCHESTRATOR), "contradicted", ("agent", agent), fact, run.run_id,
                              answer.seq))  # fmt: skip
    return facts


def run_memories(run: RunLike, *, specialists: Sequence[str] = SPECIALISTS) -> list[MemoryItem]:
    """The memories ``run`` leaves for retrieval: its outcome (shared; only when its answer
    passed the fact check, or was not checked) and each specialist's report (in that
    specialist's scope), with provenance. Ids: ``RUN-outcome``, ``RUN-SEQ``."""
    rid = run.run_id
    events = list(run.events)
    uses = tool_uses(events)
    items: list[MemoryItem] = []
    task = _one_line(run.task, 200)
    for e in events:
        if e.type != "ToolCallSummaryMessage" or e.source not in specialists or not e.content.strip():
            continue
        tools = [u for u in uses if u.agent == e.source and u.result_seq is not None and u.result_seq < e.seq]
        last = [u for u in tools if u.call_seq == tools[-1].call_seq] if tools else []
        kind = "note"
        if any(u.tool in ORDER_TOOLS for u in last):
            kind = "decision"
        elif any(u.tool in HEALTH_TOOLS and u.result and _alerts(u.result) for u in last):
            kind = "alert"
        text = _one_line(f"{e.source} on '{task}': {e.content}", MAX_MEMORY_CHARS)
        extra: dict[str, str | int | float | bool] = {"agent": e.source}
        if last:
            extra["tools"] = ",".join(dict.fromkeys(u.tool for u in last))
        items.append(MemoryItem(text, kind, e.source, rid, e.seq, id=f"{rid}-{e.seq}", extra=extra))
    answer = _answer(events)
    outcome = run.answer.strip() or (answer.content.strip() if answer else "")
    check = getattr(run, "answer_check", None)
    if check is not None and check.get("outcome") not in ("passed", "regenerated"):
        return items  # only answers that passed the fact check become outcomes to recall
    if outcome or events:
        result = outcome or f"no answer ({run.stop_reason or 'stopped'})"
        text = _one_line(f"Task: {task} | Outcome ({run.status}): {result}", MAX_MEMORY_CHARS)
        seq = answer.seq if answer is not None else (events[-1].seq if events else None)
        items.append(MemoryItem(text, "outcome", SHARED, rid, seq, id=f"{rid}-outcome",
                                extra={"status": run.status}))  # fmt: skip
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
    ) -> None:
        self.memory = memory
        self.graph = graph
        self.store = store
        self.models = dict(models or {})
        self.specialists = tuple(specialists)
        self.written = 0
        """Vector memories written so far."""
        self.recorded = 0
        """Graph relations recorded so far (new ones only)."""
        self.errors: list[str] = []

    @classmethod
    def from_config(
        cls, config: AlinaConfig, *, memory: VectorMemory | None, graph: MemoryGraph | None,
        store: _RunStoreLike | None = None,
    ) -> RunMemoryWriter:  # fmt: skip
        """The writer ``config.memory`` asks for (``write`` / ``graph`` switch each part off)."""
        enabled = config.memory.enabled
        models = {name: config.model_for(name).model for name in config.agents}
        return cls(
            memory if enabled and config.memory.write else None,
            graph if enabled and config.memory.graph else None,
            store=store,
            models=models,
        )

    async def __call__(self, run: RunLike) -> None:
        """Write ``run``'s memories and facts (both concurrently); never raises an Exception."""
        try:
            view = await self._with_history(run)
        except Exception as exc:  # noqa: BLE001 - fall back to the events at hand
            log.warning("earlier messages of run %s not read (%s); using this attempt's only",
                        run.run_id, exc)  # fmt: skip
            view = run
        self._count_contradictions(view)
        await asyncio.gather(self._write_vectors(view), self._record_graph(view))

    @staticmethod
    def _count_contradictions(run: RunLike) -> None:
        """``alina_answer_contradictions_total``, whether or not the graph is recorded."""
        try:
            answer = _answer(run.events)
            for fact in _contradictions(run, answer) if answer is not None else []:
                observe_contradiction(fact.dst[1])
        except Exception as exc:  # noqa: BLE001 - a metric never fails the write
            log.debug("run %s: contradictions not counted: %s", run.run_id, exc)

    async def _with_history(self, run: RunLike) -> RunLike:
        if self.store is None or getattr(run, "resumed_from_turn", None) is None:
            return run
        stored = await self.store.get_run(run.run_id)
        have = {e.seq for e in run.events}
        events: list[EventLike] = [
            _Event(int(m["seq"]), str(m["source"]), str(m["type"]), str(m["content"]))
            for m in (stored or {}).get("messages", []) if int(m["seq"]) not in have
        ]  # fmt: skip
        events = sorted([*events, *run.events], key=lambda e: e.seq)
        return _View(run.run_id, run.task, run.status, run.stop_reason, run.answer, events, run.routing)

    async def _write_vectors(self, run: RunLike) -> None:
        if self.memory is None:
            return
        try:
            items = run_memories(run, specialists=self.specialists)
            await self.memory.add_many(items)
        except Exception as exc:  # noqa: BLE001 - fail open
            self._failed("vectors", run, exc)
            return
        self.written += len(items)
        observe_memory_write("vectors", True, len(items))

    async def _record_graph(self, run: RunLike) -> None:
        if self.graph is None:
            return
        try:
            facts = run_facts(run, models=self.models)
            attrs: dict[tuple[str, str], dict[str, object]] = {
                ("run", run.run_id): {"task": _one_line(run.task, 200), "status": run.status}
            }
            added = await self.graph.record(facts, attrs=attrs)
        except Exception as exc:  # noqa: BLE001 - fail open
            self._failed("graph", run, exc)
            return
        self.recorded += added
        observe_memory_write("graph", True, added)

    def _failed(self, store: str, run: RunLike, exc: Exception) -> None:
        observe_memory_write(store, False)
        message = f"{store}: {type(exc).__name__}: {exc}"
        if not self.errors:
            log.warning("run %s: what it leaves in memory was not written (%s); the run itself is kept",
                        run.run_id, message)  # fmt: skip
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
    except Exception as exc:  # noqa: BLE001 - fail open
        where = memory.location() if memory is not None else "chroma"
        log.warning("memory (RAG) unavailable, runs go on without retrieval: %s: %s (%s)",
                    type(exc).__name__, _one_line(str(exc), 300), where)  # fmt: skip
        set_memory_available(False)
        if memory is not None:
            try:
                await memory.close()
            except Exception as close_exc:  # noqa: BLE001
                log.debug("closing the failed memory: %s", close_exc)
        return None
    set_memory_available(True)
    return memory
