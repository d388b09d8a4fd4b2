"""Graph facts a finished run leaves (:func:`run_facts`), read from its events: who spoke, which
tools were used with which arguments, what was observed, decided, caused and contradicted.
See :mod:`alina.team._memory` for the whole picture; :func:`tool_uses` pairs each tool call
with its result, which the memories use too."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alina.config import ORCHESTRATOR, SPECIALISTS
from alina.memory_store.graph import Relation
from alina.meta_prompts import load_prompt
from alina.skills.context import ChatMessage
from alina.team._routing import RouteDecision, report_states, reporters_of

__all__ = [
    "MAX_MEMORY_CHARS",
    "ORDER_TOOLS",
    "EventLike",
    "RunLike",
    "ToolUse",
    "StoredEvent",
    "alerts_of",
    "contradictions",
    "last_answer",
    "one_line",
    "reporters",
    "run_facts",
    "symbols_of",
    "tool_uses",
]

log = logging.getLogger("alina.team._memory")

MAX_MEMORY_CHARS = 600
"""A stored memory's text is cut here: retrieved memories go into every prompt of a CPU model."""
MAX_FACT_CHARS = 240
ORDER_TOOLS = frozenset({"place_order"})
_PAIR_ARG = re.compile(r"^[A-Za-z0-9]{2,12}/[A-Za-z0-9]{2,12}(?::[A-Za-z0-9]{2,12})?$")


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
    @property
    def tool_data(self) -> Mapping[str, Mapping[str, Any]]: ...


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    source: str
    type: str
    content: str


@dataclass(frozen=True)
class ToolUse:
    """One tool call of a run: who called what with which arguments, what came back (text, and
    the structured ``data`` facts are read from), and the seqs of the request (``call_seq``)
    and result (``result_seq``) events."""

    agent: str
    tool: str
    arguments: dict[str, Any]
    result: str | None
    call_seq: int
    result_seq: int | None
    call_id: str | None = None
    data: Mapping[str, Any] | None = None
    """The tool's structured result (a skill's ``ToolOutput``), when it returned one."""

    @property
    def failed(self) -> bool:
        return self.result is None or self.result.startswith("error")


def one_line(text: str, limit: int) -> str:
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


def tool_uses(
    events: Sequence[EventLike], data: Mapping[str, Mapping[str, Any]] | None = None
) -> list[ToolUse]:
    """The tool calls of a run, from its ToolCallRequestEvent / ToolCallExecutionEvent pairs,
    each with its structured result from ``data`` (call id -> ``ToolOutput`` data) when any."""
    data = data or {}
    pending: dict[str, tuple[int, list[tuple[str, dict[str, Any], str | None]]]] = {}
    out: list[ToolUse] = []
    for e in events:
        if e.type == "ToolCallRequestEvent":
            try:
                calls = json.loads(e.content)
            except json.JSONDecodeError:
                continue
            parsed: list[tuple[str, dict[str, Any], str | None]] = []
            for c in calls if isinstance(calls, list) else []:
                if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                    continue
                args: Any = c.get("arguments")
                if isinstance(args, str):
                    try:
                        args = json.loads(args) if args.strip() else {}
                    except json.JSONDecodeError:
                        args = {"raw": args}
                call_id = c.get("id") if isinstance(c.get("id"), str) else None
                parsed.append((c["name"], args if isinstance(args, dict) else {"value": args}, call_id))
            pending[e.source] = (e.seq, parsed)
        elif e.type == "ToolCallExecutionEvent" and e.source in pending:
            call_seq, parsed = pending.pop(e.source)
            results = _split_results(e.content, [name for name, _, _ in parsed])
            out += [
                ToolUse(e.source, name, args, result, call_seq, e.seq, cid, data.get(cid) if cid else None)
                for (name, args, cid), result in zip(parsed, results, strict=True)
            ]
    for agent, (call_seq, parsed) in pending.items():  # calls whose result never came (cut run)
        out += [ToolUse(agent, name, args, None, call_seq, None, cid) for name, args, cid in parsed]
    return sorted(out, key=lambda u: u.call_seq)


def symbols_of(use: ToolUse) -> list[str]:
    """The trading pairs a tool call is about: named in its arguments, else the ``symbol`` of its
    structured result (market tools name the pair they defaulted to)."""
    found = [
        v.strip().upper() for v in use.arguments.values() if isinstance(v, str) and _PAIR_ARG.match(v.strip())
    ]
    symbol = (use.data or {}).get("symbol")
    if not found and not use.failed and isinstance(symbol, str) and _PAIR_ARG.match(symbol):
        found = [symbol.upper()]
    return list(dict.fromkeys(found))[:5]


def alerts_of(use: ToolUse | None) -> list[tuple[str, str]]:
    """``(alert name, reason)`` for each alert of a health check's structured result."""
    alerts = (use.data or {}).get("alerts") if use is not None else None
    out = []
    for a in alerts if isinstance(alerts, list) else []:
        if isinstance(a, Mapping) and isinstance(a.get("name"), str) and isinstance(a.get("reason"), str):
            out.append((a["name"], a["reason"]))
    return out


def _masked(arguments: dict[str, Any]) -> dict[str, Any]:
    from alina.skills.recorder import mask_secrets

    return mask_secrets(arguments)


def reporters(prompts: Mapping[str, str] | None = None) -> dict[str, str]:
    """Report domain -> the agent whose report decides it, read from the prompt files
    (``prompts``: agent -> prompt file name; default: each agent's own file)."""
    names = prompts or {n: n for n in (ORCHESTRATOR, *SPECIALISTS)}
    return reporters_of(load_prompt(p) for p in names.values())


def run_facts(
    run: RunLike, *, models: Mapping[str, str] | None = None, reporting: Mapping[str, str] | None = None
) -> list[Relation]:
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
    uses = tool_uses(run.events, run.tool_data)
    for use in uses:
        agent = ("agent", use.agent)
        args = json.dumps(_masked(use.arguments), sort_keys=True, ensure_ascii=False)
        facts.append(
            Relation(agent, "used", ("tool", use.tool), one_line(args, MAX_FACT_CHARS), rid, use.call_seq)
        )
        strategy = use.arguments.get("strategy")
        if isinstance(strategy, str) and strategy.strip():
            facts.append(Relation(agent, "used", ("strategy", strategy.strip()), None, rid, use.call_seq))
        if use.result is None:
            continue
        seq = use.result_seq
        result = one_line(use.result, MAX_FACT_CHARS)
        for symbol in symbols_of(use):
            if use.tool in ORDER_TOOLS:
                order = " ".join(
                    str(use.arguments[k]) for k in ("side", "amount", "order_type") if k in use.arguments
                )
                fact = f"order {order}: {result}" if order else f"order: {result}"
                facts.append(
                    Relation(agent, "decided", ("asset", symbol), one_line(fact, MAX_FACT_CHARS), rid, seq)
                )
            elif not use.failed:
                facts.append(Relation(agent, "observed", ("asset", symbol), result, rid, seq))
        for name, reason in alerts_of(use):
            facts.append(Relation(agent, "observed", ("alert", name), reason, rid, seq))
    facts += _causes(run, uses)
    answer = last_answer(run.events)
    if answer is not None:
        facts.append(
            Relation(
                ("agent", ORCHESTRATOR),
                "decided",
                run_ref,
                one_line(answer.content, MAX_FACT_CHARS),
                rid,
                answer.seq,
            )
        )
        facts += contradictions(run, answer, reporting)
    return list(dict.fromkeys(facts))


def last_answer(events: Sequence[EventLike]) -> EventLike | None:
    """ALINA's final answer: its last text message."""
    return next((e for e in reversed(events) if e.source == ORCHESTRATOR and e.type == "TextMessage"), None)


_REPORT_TYPES = frozenset({"ToolCallSummaryMessage", "TextMessage"})


def _latest_report(
    events: Sequence[EventLike], agent: str, domain: str, before: int | None = None
) -> tuple[EventLike, list[str]] | None:
    """``agent``'s latest report (before seq ``before``) that names a state of ``domain``."""
    for e in reversed(events):
        if e.source != agent or e.type not in _REPORT_TYPES or (before is not None and e.seq >= before):
            continue
        states = report_states(e.content, domain)
        if states:
            return e, states
    return None


def _causes(run: RunLike, uses: Sequence[ToolUse]) -> list[Relation]:
    """``X caused run``: a step the task made conditional ("if healthy, ...") was skipped
    because a report did not show the condition. X is what the report is about, read from the
    structured result of the tool call behind it: each alert of a degraded health check, the
    asset of a trend report, else the reporting agent."""
    facts: list[Relation] = []
    for decision in run.routing:
        for skip in decision.skipped:
            found = _latest_report(run.events, skip.on, skip.domain)
            if found is None:
                continue
            report, states = found
            behind = next(
                (
                    u
                    for u in reversed(uses)
                    if u.agent == skip.on and u.result_seq is not None and u.result_seq <= report.seq
                ),
                None,
            )
            causes: list[tuple[str, str]] = [("alert", name) for name, _ in alerts_of(behind)]
            if not causes and skip.domain == "trend" and behind is not None:
                causes = [("asset", symbol) for symbol in symbols_of(behind)]
            fact = (
                f"skipped the {skip.agent}: the task wanted it only if {skip.condition}; the {skip.on}'s "
                f"report says {states[0]}"
            )
            for cause in causes or [("agent", skip.on)]:
                facts.append(Relation(cause, "caused", ("run", run.run_id), fact, run.run_id, report.seq))
    return facts


def contradictions(
    run: RunLike, answer: EventLike, reporting: Mapping[str, str] | None = None
) -> list[Relation]:
    """``alina contradicted AGENT``: the answer names one health (or trend) state and the latest
    report before it of the agent that reports on that domain (``reporting``: domain -> agent,
    default :func:`reporters`) names one other state. A text naming several states ("healthy,
    though memory was degraded earlier") is ambiguous and never counts."""
    facts: list[Relation] = []
    for domain, agent in (reporters() if reporting is None else reporting).items():
        said = report_states(answer.content, domain)
        found = _latest_report(run.events, agent, domain, before=answer.seq)
        if len(said) != 1 or found is None or len(found[1]) != 1 or found[1] == said:
            continue
        report, (state,) = found
        fact = f"the answer says {said[0]}; the {agent}'s report (#{report.seq}) says {state}"
        facts.append(
            Relation(("agent", ORCHESTRATOR), "contradicted", ("agent", agent), fact, run.run_id, answer.seq)
        )
    return facts
