"""Monitoring: instrumentation cost per model call and per tool call; the observer's cost per cycle.

Side by side in the same run, medians over the repetitions:

1. Model call. The embedded model (SmolLM2-135M through ``LlamaCppClient``, 16 tokens) called
   bare, and the same call followed by exactly what the resilient client records for it
   (:func:`alina.monitoring.metrics.observe_model_call`: counters, histograms, the GenAI series,
   the latency window and the cost). The calls are interleaved (the order flips every
   repetition). The instrumentation itself is also timed on its own in a tight loop (a model
   call's noise is far larger than the microseconds measured), and its share of one embedded
   call is the goal (< 1%). The agent-turn record (``gen_ai_invoke_agent_duration_seconds``,
   once per turn) is timed the same way and reported next to it.
2. Tool call. A trivial tool function called directly, and through :func:`alina.skills.builtin.instrument`
   (timing, the outcome check and :func:`observe_tool_call`); the added time per call is the
   goal (< 50 µs).
3. Observer cycle. One :meth:`Observer.evaluate` of the default rules (figures read from the
   registry, no Postgres) on a registry holding the series of 4 agents x 3 models x 6 tools,
   against one ``/metrics`` render of the same registry (what a Prometheus scrape costs); and
   the share of one evaluation interval (``alerts.interval_s``) the observer's CPU takes.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from bench._harness import Goal, Result, median, progress, ratio

MODEL_CALLS_PER_REP = 6
LOOP = 20_000
TOOL_LOOP = 50_000
CYCLES = 200
MODEL_SHARE_MAX = 0.01  # of one embedded-model call
TOOL_ADDED_US_MAX = 50.0


def _per_call_us(fn: Any, n: int) -> float:
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        gc.enable()


def _populate() -> None:
    """Series like a busy process's: 4 agents x 3 models, 6 tools, evaluations, the queue."""
    from alina.models import Governor
    from alina.monitoring import metrics

    agents, models = ("alina", "trader", "monitor", "optimizer"), ("smollm2", "qwen15", "fallback")
    for a in agents:
        for m in models:
            for outcome in ("ok", "timeout", "error"):
                metrics.observe_model_call(a, "llamacpp", m, 0.8, 120, 30, outcome=outcome)
        for t in range(6):
            metrics.observe_tool_call(a, f"tool_{t}", 0.002)
        metrics.observe_evaluation("answer_check", a, 0.8, "passed")
        metrics.observe_agent_invocation(a, "smollm2", 1.5)

    async def queue() -> None:
        gov = Governor(4, name="bench-monitoring")
        async with gov.slot("chat"):
            pass

    asyncio.run(queue())


def _model_side(reps: int, quick: bool) -> dict[str, Any]:
    from autogen_core.models import SystemMessage, UserMessage

    from alina.config import ModelConfig
    from alina.models import build_provider
    from alina.monitoring import metrics

    client = build_provider(ModelConfig(), max_tokens=16)
    messages = [SystemMessage(content="You are terse."), UserMessage(content="Say hello.", source="user")]
    calls = max(2, MODEL_CALLS_PER_REP // (2 if quick else 1))

    async def bare() -> float:
        t0 = time.perf_counter()
        await client.create(messages)
        return time.perf_counter() - t0

    async def instrumented() -> float:
        t0 = time.perf_counter()
        r = await client.create(messages)
        metrics.observe_model_call(
            "bench",
            "llamacpp",
            "smollm2",
            time.perf_counter() - t0,
            r.usage.prompt_tokens,
            r.usage.completion_tokens,
        )
        return time.perf_counter() - t0

    async def go() -> dict[str, list[float]]:
        await client.create(messages)  # load and warm up
        out: dict[str, list[float]] = {"bare_s": [], "instrumented_s": []}
        for rep in range(reps):
            order = [("bare_s", bare), ("instrumented_s", instrumented)]
            for key, fn in order if rep % 2 == 0 else order[::-1]:
                out[key].append(median([await fn() for _ in range(calls)]))
            progress(
                f"model calls rep {rep + 1}/{reps}: bare {out['bare_s'][-1]:.3f}s, "
                f"instrumented {out['instrumented_s'][-1]:.3f}s"
            )
        await client.close()
        return out

    out = asyncio.run(go())
    loop = LOOP // (4 if quick else 1)
    out["observe_us"] = [
        _per_call_us(lambda: metrics.observe_model_call("bench", "llamacpp", "smollm2", 0.5, 120, 30), loop)
        for _ in range(reps)
    ]
    out["agent_turn_us"] = [
        _per_call_us(lambda: metrics.observe_agent_invocation("bench", "smollm2", 1.5), loop)
        for _ in range(reps)
    ]
    return out


def _tool(symbol: str = "BTC/USDT") -> str:
    """A trivial tool.

    Args:
        symbol: a pair
    """
    return symbol


def _tool_side(reps: int, quick: bool) -> dict[str, list[float]]:
    from alina.skills.builtin import instrument

    wrapped = instrument(_tool, "bench")
    n = TOOL_LOOP // (4 if quick else 1)
    out: dict[str, list[float]] = {"bare_us": [], "instrumented_us": []}
    for rep in range(reps):
        sides = [("bare_us", lambda: _tool("ETH/USDT")), ("instrumented_us", lambda: wrapped("ETH/USDT"))]
        for key, fn in sides if rep % 2 == 0 else sides[::-1]:
            out[key].append(_per_call_us(fn, n))
    return out


def _observer_side(reps: int, quick: bool) -> dict[str, list[float]]:
    from alina.config import AlertsConfig
    from alina.monitoring.metrics import render_latest
    from alina.monitoring.observer import Observer

    obs = Observer(AlertsConfig())
    cycles = CYCLES // (4 if quick else 1)

    async def evaluate_us() -> float:
        t0 = time.perf_counter()
        for _ in range(cycles):
            await obs.evaluate()
        return (time.perf_counter() - t0) / cycles * 1e6

    out: dict[str, list[float]] = {"evaluate_us": [], "render_us": []}
    for rep in range(reps):
        sides = [
            ("evaluate_us", lambda: asyncio.run(evaluate_us())),
            ("render_us", lambda: _per_call_us(render_latest, cycles)),
        ]
        for key, fn in sides if rep % 2 == 0 else sides[::-1]:
            out[key].append(fn())
    out["series"] = [float(len(render_latest().splitlines()))]
    return out


def run(reps: int, quick: bool) -> Result:
    from alina.config import AlertsConfig

    progress("populating the registry")
    _populate()
    progress("model calls: embedded SmolLM2, bare vs instrumented")
    model = _model_side(reps, quick)
    progress("tool calls: bare vs instrument()")
    tool = _tool_side(reps, quick)
    progress("observer: evaluate() vs one /metrics render")
    observer = _observer_side(reps, quick)

    bare_s, inst_s = median(model["bare_s"]), median(model["instrumented_s"])
    observe_us, turn_us = median(model["observe_us"]), median(model["agent_turn_us"])
    share = observe_us / 1e6 / bare_s
    tool_bare, tool_inst = median(tool["bare_us"]), median(tool["instrumented_us"])
    tool_added = tool_inst - tool_bare
    ev_us, render_us = median(observer["evaluate_us"]), median(observer["render_us"])
    interval_s = AlertsConfig().interval_s
    rows: list[list[Any]] = [
        ["embedded model call, bare (s, median)", bare_s, bare_s, 1.0],
        ["embedded model call + observe_model_call (s, median)", inst_s, bare_s, ratio(inst_s, bare_s)],
        ["observe_model_call alone (µs per call)", observe_us, bare_s * 1e6, share],
        ["agent turn record alone (µs per turn)", turn_us, bare_s * 1e6, turn_us / 1e6 / bare_s],
        [
            "model-call instrumentation, % of one embedded call",
            100 * share,
            100 * MODEL_SHARE_MAX,
            share / MODEL_SHARE_MAX,
        ],
        ["tool call, bare (µs)", tool_bare, tool_bare, 1.0],
        ["tool call, instrument() (µs)", tool_inst, tool_bare, ratio(tool_inst, tool_bare)],
        [
            "tool call, added by instrumentation (µs)",
            tool_added,
            TOOL_ADDED_US_MAX,
            tool_added / TOOL_ADDED_US_MAX,
        ],
        ["one /metrics render of the same registry (µs)", render_us, render_us, 1.0],
        ["observer evaluate(), default rules (µs per cycle)", ev_us, render_us, ratio(ev_us, render_us)],
        [
            f"observer evaluate(), % of its {interval_s:g} s interval",
            100 * ev_us / 1e6 / interval_s,
            None,
            None,
        ],
    ]
    return Result(
        name="monitoring",
        title="Monitoring: instrumentation per model and tool call, observer per cycle",
        headers=["figure", "value", "anchor or goal", "ratio"],
        rows=rows,
        goals=[
            Goal(
                "model-call instrumentation, % of an embedded call",
                100 * share,
                100 * MODEL_SHARE_MAX,
                higher_is_better=False,
            ),
            Goal("tool-call added µs", tool_added, TOOL_ADDED_US_MAX, higher_is_better=False),
        ],
        raw={"model": model, "tool": tool, "observer": observer},
        params={
            "reps": reps,
            "quick": quick,
            "model_calls_per_rep": MODEL_CALLS_PER_REP,
            "loop": LOOP,
            "tool_loop": TOOL_LOOP,
            "cycles": CYCLES,
            "registry_lines": observer["series"][0],
        },
        notes=[
            "The bare-vs-instrumented model-call medians differ by noise far larger than the "
            "instrumentation; the goal uses the instrumentation timed alone (tight loop) over the "
            "median bare call.",
            "The agent-turn record happens once per agent turn, which holds one or more model calls.",
        ],
    )
