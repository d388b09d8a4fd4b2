"""Built-in tools of the specialist agents: plain functions, which ``alina.agents.tools_for``
wraps for AutoGen.

Each tool is a plain function with flat, primitive, defaulted arguments that returns one
short string a small model can use. Handled failures return a string starting with
:data:`ERROR_PREFIX` instead of raising. ``alina.agents.tools_for`` wraps every function so each call
is timed and recorded with :func:`alina.monitoring.metrics.observe_tool_call`, and so the
``Args:`` lines of its docstring become the parameter descriptions in the JSON schema.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psutil

from alina.meta_prompts.rubric import score as rubric_score
from alina.monitoring.metrics import LATENCY, LatencyWindow
from alina.skills._contract import ToolOutput
from alina.skills._schema import (  # noqa: F401 - the helpers are re-exported from here, their old home
    ERROR_PREFIX,
    description_of,
    instrument,
    parse_args_doc,
)
from alina.skills.bindings import current_bindings
from alina.skills.context import ChatMessage, RunContext, current_run_context, run_context
from alina.skills.task_args import task_arguments
from alina.trading.market_data import MarketData, UnknownSymbolError, available_symbols, format_price

# Health thresholds (documented in system_health).
MEMORY_DEGRADED_PCT = 90.0
P95_DEGRADED_S = 30.0
LOAD_PER_CPU_DEGRADED = 2.0


def market_data() -> MarketData:
    """The :class:`MarketData` of the application in use (:mod:`alina.skills.bindings`), else
    the packaged candles (read-only, loaded once)."""
    bound = current_bindings()
    if bound is not None and bound.market_data is not None:
        return bound.market_data
    return _packaged_market_data()


@functools.cache
def _packaged_market_data() -> MarketData:
    return MarketData()


# --------------------------------------------------------------------------- trader

# The symbols with packaged data, as an enum in the tool schema: a grammar-constrained small
# model can then only name a pair that exists (it invents "json" or the tool name otherwise).
Symbol = Literal[tuple(sorted(available_symbols()))]  # type: ignore[valid-type]


def get_price(symbol: Symbol = "BTC/USDT") -> str:  # type: ignore[valid-type]
    """Get the last price of a trading pair from the bundled historical market data.

    In a run, the pair the user's request names wins over ``symbol`` (see
    :mod:`alina.skills.task_args`).

    Args:
        symbol: Trading pair, e.g. "BTC/USDT".
    """
    symbol = task_arguments().symbol or symbol
    md = market_data()
    try:
        sym = md.resolve(symbol)
        price, ts_ms = md.last_price(sym)
    except UnknownSymbolError as exc:
        return f"{ERROR_PREFIX} unknown symbol {exc.symbol!r}; available: {', '.join(exc.available)}"
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts_ms / 1000))
    return ToolOutput(
        f"{sym} last price {format_price(price)} (close of the 5m candle at {when} UTC, historical data)",
        {"symbol": sym, "price": price, "ts_ms": ts_ms},
    )


def candle_summary(symbol: Symbol = "BTC/USDT", hours: float = 24.0) -> str:  # type: ignore[valid-type]
    """Summarise the trend of a pair over the last hours or days of market data: change, high, low.

    In a run, the window and pair the user's request names win over ``hours`` and ``symbol``
    (see :mod:`alina.skills.task_args`); the summary states the window it covers.

    Args:
        symbol: Trading pair, e.g. "BTC/USDT".
        hours: How many hours back from the end of the data to summarise, e.g. 24.
    """
    asked = task_arguments()
    symbol = asked.symbol or symbol
    hours = asked.hours if asked.hours is not None else hours
    md = market_data()
    try:
        hours = float(hours)
    except (TypeError, ValueError):
        return f"{ERROR_PREFIX} hours must be a number, got {hours!r}"
    if not (math.isfinite(hours) and hours > 0):
        return f"{ERROR_PREFIX} hours must be a positive number, got {hours:g}"
    try:
        summary = md.summary(symbol, hours)
    except UnknownSymbolError as exc:
        return f"{ERROR_PREFIX} unknown symbol {exc.symbol!r}; available: {', '.join(exc.available)}"
    return ToolOutput(summary.to_text(), dataclasses.asdict(summary))


# --------------------------------------------------------------------------- monitor

_proc = psutil.Process()
_cpu_lock = threading.Lock()
_cpu_primed = False


def _process_cpu_percent() -> float:
    """Process CPU % since the previous call; the first call samples 0.1 s instead."""
    global _cpu_primed
    with _cpu_lock:
        if not _cpu_primed:
            _cpu_primed = True
            return _proc.cpu_percent(interval=0.1)
        return _proc.cpu_percent(interval=None)


@dataclass(frozen=True)
class HealthReport:
    """Numbers behind :func:`system_health` and the verdict derived from them."""

    cpu_pct: float
    rss_mb: float
    mem_used_pct: float
    load: tuple[float, float, float]
    n_cpu: int
    latency: dict[str, dict[str, float]]
    verdict: str
    reasons: list[str]
    alerts: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """``(name, reason)`` per failed check, the reasons in order (:func:`health_alerts`)."""


def evaluate_health(
    mem_used_pct: float,
    load1: float,
    n_cpu: int,
    latency: dict[str, dict[str, float]],
) -> tuple[str, list[str]]:
    """Return ``("healthy"|"degraded", reasons)``.

    Degraded when system memory use > 90 %, or any agent's p95 model latency > 30 s, or the
    1-minute load average > 2 × the CPU count.
    """
    reasons = [reason for _, reason in health_alerts(mem_used_pct, load1, n_cpu, latency)]
    return ("degraded" if reasons else "healthy"), reasons


def health_alerts(
    mem_used_pct: float, load1: float, n_cpu: int, latency: dict[str, dict[str, float]]
) -> list[tuple[str, str]]:
    """``(alert name, reason)`` for each check that failed (see :func:`evaluate_health`):
    ``memory-high``, ``latency-high`` (per agent), ``load-high``."""
    alerts = []
    if mem_used_pct > MEMORY_DEGRADED_PCT:
        alerts.append(("memory-high", f"memory {mem_used_pct:.0f}% > {MEMORY_DEGRADED_PCT:.0f}%"))
    for agent, st in latency.items():
        if st["p95_s"] > P95_DEGRADED_S:
            alerts.append(("latency-high", f"{agent} p95 {st['p95_s']:.1f}s > {P95_DEGRADED_S:.0f}s"))
    if load1 > LOAD_PER_CPU_DEGRADED * max(1, n_cpu):
        alerts.append(("load-high", f"load {load1:.1f} > {LOAD_PER_CPU_DEGRADED:g}x{n_cpu} cpu"))
    return alerts


def health_report(latency: LatencyWindow | None = None) -> HealthReport:
    """Collect process/system numbers and model latency, and judge them."""
    window = latency if latency is not None else LATENCY
    stats = window.stats()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    n_cpu = psutil.cpu_count() or 1
    mem = psutil.virtual_memory().percent
    alerts = health_alerts(mem, load[0], n_cpu, stats)
    reasons = [reason for _, reason in alerts]
    return HealthReport(
        cpu_pct=_process_cpu_percent(),
        rss_mb=_proc.memory_info().rss / 1e6,
        mem_used_pct=mem,
        load=(load[0], load[1], load[2]),
        n_cpu=n_cpu,
        latency=stats,
        verdict="degraded" if alerts else "healthy",
        reasons=reasons,
        alerts=alerts,
    )


def format_health(r: HealthReport) -> str:
    """Two short lines: verdict + resources, then model latency per agent."""
    why = f" ({'; '.join(r.reasons)})" if r.reasons else ""
    line1 = (
        f"{r.verdict}{why}: process cpu {r.cpu_pct:.1f}%, rss {r.rss_mb:.0f} MB, "
        f"system memory {r.mem_used_pct:.0f}% used, load {r.load[0]:.2f}/{r.load[1]:.2f}/{r.load[2]:.2f} "
        f"({r.n_cpu} cpu)"
    )
    if r.latency:
        parts = [
            f"{a} p50 {s['p50_s']:.2f}s p95 {s['p95_s']:.2f}s last {s['last_s']:.2f}s ({s['calls']} calls)"
            for a, s in r.latency.items()
        ]
        line2 = "model latency: " + "; ".join(parts)
    else:
        line2 = "model latency: no model calls recorded yet"
    return f"{line1}\n{line2}"


def system_health() -> str:
    """Report process CPU and memory, system memory and load, model latency, and a health verdict.

    The verdict is "degraded" when system memory use > 90%, any agent's p95 model latency
    > 30 s, or the 1-minute load average > 2x the CPU count; otherwise "healthy". A third line
    gives the live figures (calls, tokens, cost, calls in flight, paper PnL, alerts firing), a
    fourth the system mode and the open alerts count (or says they are unavailable), and a fifth,
    when there are any, the open alerts and the actions waiting for an operator.
    """
    from alina.monitoring.report import live_figures_line
    from alina.runtime.status import monitor_alerts_detail, monitor_status_line

    bound = current_bindings()
    status_line = bound.status_line if bound is not None and bound.status_line else monitor_status_line
    detail = bound.alerts_detail if bound is not None and bound.alerts_detail else monitor_alerts_detail
    status, detail_text = status_line(), detail()
    report = health_report()
    lines = [format_health(report), live_figures_line(), status, detail_text]
    return ToolOutput(
        "\n".join(line for line in lines if line),
        {
            "verdict": report.verdict,
            "alerts": [{"name": name, "reason": reason} for name, reason in report.alerts],
            "cpu_pct": report.cpu_pct,
            "rss_mb": report.rss_mb,
            "mem_used_pct": report.mem_used_pct,
            "load": list(report.load),
        },
    )


# --------------------------------------------------------------------------- optimizer


@contextmanager
def conversation_scope(task: str, messages: Callable[[], Sequence[ChatMessage]]) -> Iterator[None]:
    """Let tools called inside read a conversation (a :class:`RunContext` with no run id:
    no side-effect grants; for tests and notebooks that score text outside a team run)."""
    with run_context(RunContext(task, messages)):
        yield


def score_text(answer: str, task: str = "") -> str:
    """The rubric's verdict on ``answer`` to ``task``: score, criteria, the failed ones."""
    result = rubric_score(answer, task)
    failed = [n for n in result.notes if not n.endswith("n/a")]
    return result.to_text() + (f" ({'; '.join(failed[:2])})" if failed else "")


def _request_material(task: str) -> str:
    """What the user asked to have scored: the text after the first colon, or the request."""
    head, colon, rest = task.partition(":")
    return rest.strip() if colon and rest.strip() else task.strip()


def score_answer(of: Literal["latest", "trader", "monitor", "request"] = "latest") -> str:
    """Score a report of this run from 0 to 1 with a fixed rubric; list the criteria that fail.

    Args:
        of: Whose text to score: latest (the newest specialist report, else the text in the
            user's request), trader, monitor, or request (the text the user gave).
    """
    conv = current_run_context()
    if conv is None:
        return f"{ERROR_PREFIX} score_answer scores the reports of a team run; no run is active"
    if of != "request":
        # Chat messages of the specialists (not tool events, not the optimizer's own scores).
        reports = [
            m
            for m in conv.messages()
            if not m.type.endswith("Event")
            and m.source not in ("user", "optimizer")
            and (of == "latest" or m.source == of)
        ]
        if reports:
            return f"{reports[-1].source}'s report: " + score_text(reports[-1].content, conv.task)
        if of != "latest":
            return f"{ERROR_PREFIX} no report from {of} in this run yet; ask {of} first"
    return "the request's text: " + score_text(_request_material(conv.task), conv.task)


# --------------------------------------------------------------------------- registry

BUILTIN_SKILLS: dict[str, list[Callable[..., Any]]] = {
    "trader": [get_price, candle_summary],
    "monitor": [system_health],
    "optimizer": [score_answer],
}
