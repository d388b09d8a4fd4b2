"""Prometheus metrics for AgentAlina, on a private registry, plus an in-process latency window
(:data:`LATENCY`; its class, :class:`LatencyWindow`, is in ``monitoring/_latency.py``).

All series live on :data:`REGISTRY` (not prometheus_client's global default registry), so
importing this module never pollutes other registries and an exporter must serve
``REGISTRY`` explicitly (e.g. ``prometheus_client.generate_latest(REGISTRY)`` or
:func:`render_latest`).

Label hygiene: label values are identifiers only (agent, provider, model, tool names,
fixed outcome/status/kind words). They are sanitised to ``[A-Za-z0-9_.:/-]`` and cut at 64
characters, so a message or a secret can never become a long-lived time series by mistake.

OpenTelemetry GenAI semantic conventions (``gen_ai.*`` metrics, status Development) are exported
in their Prometheus form next to the ``alina_*`` series, recorded by the same functions:
``gen_ai_client_operation_duration_seconds``, ``gen_ai_client_token_usage`` (both from
:func:`observe_model_call`), ``gen_ai_execute_tool_duration_seconds`` (from
:func:`observe_tool_call`) and ``gen_ai_invoke_agent_duration_seconds`` (from
:func:`observe_agent_invocation`). Attribute dots become underscores (``gen_ai.request.model`` ->
``gen_ai_request_model``); ``error_type`` is empty on success, as OTel leaves ``error.type`` unset.
``alina_cost_estimated_total{agent,kind}`` turns tokens and CPU seconds into money at the rates
set by :func:`configure_costs` (``monitoring:`` in config.yaml; all 0.0 by default). The
process's CPU and memory (``process_*``) come from prometheus_client's ProcessCollector.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from alina.monitoring._latency import LatencyWindow, _seconds

REGISTRY = CollectorRegistry(auto_describe=True)

MODEL_OUTCOMES = frozenset(
    {"ok", "timeout", "unreachable", "malformed", "repaired", "overflow", "fallback", "exhausted", "error"}
)
TOOL_OUTCOMES = frozenset({"ok", "error", "timeout"})
TOKEN_KINDS = ("prompt", "completion")

MODEL_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)
TOOL_CALL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
RUN_TURN_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 50)

MODEL_CALLS = Counter(
    "alina_model_calls_total",
    "Model (LLM) call attempts by outcome: ok|timeout|unreachable|malformed|repaired|overflow|fallback|"
    "exhausted|error (exhausted: every retry and the fallback failed).",
    ["agent", "provider", "model", "outcome"],
    registry=REGISTRY,
)
MODEL_CALL_SECONDS = Histogram(
    "alina_model_call_seconds",
    "Wall-clock duration of model calls in seconds.",
    ["agent", "provider", "model"],
    buckets=MODEL_CALL_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "alina_tokens_total",
    "Tokens used by model calls, kind=prompt|completion.",
    ["agent", "kind"],
    registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "alina_tool_calls_total",
    "Tool calls by outcome: ok|error|timeout.",
    ["agent", "tool", "outcome"],
    registry=REGISTRY,
)
TOOL_CALL_SECONDS = Histogram(
    "alina_tool_call_seconds",
    "Duration of tool calls in seconds.",
    ["tool"],
    buckets=TOOL_CALL_BUCKETS,
    registry=REGISTRY,
)
RUNS = Counter("alina_runs_total", "Team runs by final status.", ["status"], registry=REGISTRY)
RUN_TURNS = Histogram(
    "alina_run_turns", "Turns (messages) per team run.", buckets=RUN_TURN_BUCKETS, registry=REGISTRY
)
CHECKPOINTS = Counter(
    "alina_checkpoints_total",
    "Turn commits (messages + team state) by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
CHECKPOINT_SECONDS = Histogram(
    "alina_checkpoint_seconds",
    "Time to write one turn commit to Postgres (off the model path).",
    buckets=TOOL_CALL_BUCKETS,
    registry=REGISTRY,
)
MODEL_CALLS_IN_FLIGHT = Gauge(
    "alina_model_calls_in_flight", "Model calls holding a governor slot now.", ["governor"], registry=REGISTRY
)
MODEL_QUEUE_WAIT_SECONDS = Histogram(
    "alina_model_queue_wait_seconds",
    "Time a model call waited for a governor slot, by priority class.",
    ["priority"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
    registry=REGISTRY,
)
GOVERNOR_LIMIT = Gauge(
    "alina_governor_limit", "The governor's cap on model calls in flight.", ["governor"], registry=REGISTRY
)
GOVERNOR_REDIS_FALLBACKS = Counter(
    "alina_governor_redis_fallbacks_total",
    "Model calls admitted on the process-local cap only because Redis (the cross-process leases) failed.",
    ["governor"],
    registry=REGISTRY,
)
EVALUATION_SCORE = Histogram(
    "alina_evaluation_score",
    "Scores (0..1) of messages by evaluation (answer_check, output_check) and agent.",
    ["evaluation", "agent"],
    buckets=(0.0, 0.34, 0.5, 0.67, 0.7, 0.8, 0.9, 1.0),
    registry=REGISTRY,
)
EVALUATIONS = Counter(
    "alina_evaluations_total",
    "Evaluations by name, agent and outcome (answer_check: passed|regenerated|digest).",
    ["evaluation", "agent", "outcome"],
    registry=REGISTRY,
)
RESUMES = Counter("alina_run_resumes_total", "Runs resumed from a checkpoint.", registry=REGISTRY)
EVENTS_DROPPED = Counter(
    "alina_events_dropped_total",
    "Operational events lost: spool_full (Postgres away and the spool file at its size bound), "
    "spool_corrupt (an unreadable spool line, e.g. cut by a crash).",
    ["reason"],
    registry=REGISTRY,
)
EVENTS_PERSISTED = Counter(
    "alina_events_persisted_total",
    "Operational events committed to Postgres (events table).",
    registry=REGISTRY,
)
MODEL_RETRIES = Counter(
    "alina_model_retries_total",
    "Model calls asked again by the resilient client, by reason: timeout (a retry of the same "
    "model), repair (malformed output re-asked with the parse error), trim (context overflow).",
    ["agent", "reason"],
    registry=REGISTRY,
)
PAPER_EQUITY = Gauge(
    "alina_paper_equity",
    "Paper account equity (quote currency), as of the desk's last look.",
    ["account"],
    registry=REGISTRY,
)
PAPER_PNL = Gauge(
    "alina_paper_pnl",
    "Paper account PnL (quote currency), kind=total|day|realized|unrealized.",
    ["account", "kind"],
    registry=REGISTRY,
)
PAPER_DRAWDOWN = Gauge(
    "alina_paper_drawdown_ratio",
    "Paper account drawdown: (peak equity - equity) / peak equity, 0..1, peak since this process "
    "first saw the account (or its start equity, if higher).",
    ["account"],
    registry=REGISTRY,
)
ALERTS_FIRING = Gauge(
    "alina_alerts_firing", "1 while the observer's alert rule is firing, else 0.", ["rule"], registry=REGISTRY
)
ALERT_ACTIONS = Counter(
    "alina_alert_actions_total",
    "Actions taken on alerts, by result: applied|pending|approved|rejected|rate_limited|cancelled|failed|"
    "unavailable|undone|kept|recovered|not_recovered.",
    ["action", "result"],
    registry=REGISTRY,
)

# --- OpenTelemetry GenAI semantic conventions (Prometheus form); buckets as the conventions suggest
GEN_AI_DURATION_BUCKETS = tuple(0.01 * 2**i for i in range(14))  # 0.01 .. 81.92 s
GEN_AI_TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1 .. 67108864 tokens
GEN_AI_AGENT_BUCKETS = tuple(round(0.1 * 2**i, 1) for i in range(13))  # 0.1 .. 409.6 s
GEN_AI_CHAT = "chat"
_GEN_AI_MODEL_LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
# outcomes that are a successful call (a repaired answer is still an answer): no error.type
_MODEL_OK = frozenset({"ok", "repaired"})

GEN_AI_OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds",
    "OTel gen_ai.client.operation.duration: duration of a GenAI client operation (one model call); "
    "error_type is the ALINA outcome of a failed call, empty on success.",
    [*_GEN_AI_MODEL_LABELS, "error_type"],
    buckets=GEN_AI_DURATION_BUCKETS,
    registry=REGISTRY,
)
GEN_AI_TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage",
    "OTel gen_ai.client.token.usage: tokens per model call, gen_ai_token_type=input|output.",
    [*_GEN_AI_MODEL_LABELS, "gen_ai_token_type"],
    buckets=GEN_AI_TOKEN_BUCKETS,
    registry=REGISTRY,
)
GEN_AI_EXECUTE_TOOL_DURATION = Histogram(
    "gen_ai_execute_tool_duration_seconds",
    "OTel gen_ai.execute_tool.duration: duration of a tool execution; error_type empty on success.",
    ["gen_ai_tool_name", "gen_ai_tool_type", "gen_ai_agent_name", "error_type"],
    buckets=GEN_AI_DURATION_BUCKETS,
    registry=REGISTRY,
)
GEN_AI_INVOKE_AGENT_DURATION = Histogram(
    "gen_ai_invoke_agent_duration_seconds",
    "OTel gen_ai.invoke_agent.duration: duration of one agent invocation (one turn of an agent).",
    ["gen_ai_agent_name", "gen_ai_request_model", "error_type"],
    buckets=GEN_AI_AGENT_BUCKETS,
    registry=REGISTRY,
)

COST_KINDS = ("prompt", "completion", "cpu")
COST = Counter(
    "alina_cost_estimated_total",
    "Estimated cost (monitoring.cost_per_* rates; currency is the operator's) by agent and "
    "kind=prompt|completion|cpu. cpu: the process CPU seconds since the previous model call, "
    "charged to the agent whose call just ended.",
    ["agent", "kind"],
    registry=REGISTRY,
)
# process_cpu_seconds_total, process_resident_memory_bytes, ... (Linux /proc; a no-op elsewhere)
PROCESS = ProcessCollector(registry=REGISTRY)


@dataclass
class CostRates:
    """Money per unit: per 1000 prompt tokens, per 1000 completion tokens, per CPU second."""

    per_1k_prompt_tokens: float = 0.0
    per_1k_completion_tokens: float = 0.0
    per_cpu_second: float = 0.0


_COST_LOCK = threading.Lock()
_cost_rates = CostRates()
_last_cpu = time.process_time()


def configure_costs(
    per_1k_prompt_tokens: float = 0.0, per_1k_completion_tokens: float = 0.0, per_cpu_second: float = 0.0
) -> CostRates:
    """Set the rates :func:`observe_model_call` prices calls at (negative or non-finite -> 0)."""
    global _cost_rates
    rates = CostRates(
        *(_seconds(v) for v in (per_1k_prompt_tokens, per_1k_completion_tokens, per_cpu_second))
    )
    with _COST_LOCK:
        _cost_rates = rates
    return rates


def _observe_cost(agent: str, prompt_tokens: int | None, completion_tokens: int | None) -> None:
    global _last_cpu
    with _COST_LOCK:
        rates = _cost_rates
        now = time.process_time()  # all threads of this process (llama.cpp computes in-process)
        cpu, _last_cpu = max(0.0, now - _last_cpu), now
    # inc(0) too: the series exist from the first call on, so dashboards show 0, not "no data"
    COST.labels(agent=agent, kind="prompt").inc(
        max(0, prompt_tokens or 0) / 1000 * rates.per_1k_prompt_tokens
    )
    COST.labels(agent=agent, kind="completion").inc(
        max(0, completion_tokens or 0) / 1000 * rates.per_1k_completion_tokens
    )
    COST.labels(agent=agent, kind="cpu").inc(cpu * rates.per_cpu_second)


_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.:/-]+")
_LABEL_MAX = 64


def safe_label(value: object) -> str:
    """Sanitise a label value: identifier characters only, at most 64 chars, never empty."""
    text = _LABEL_BAD.sub("_", str(value if value is not None else "")).strip("_")
    return text[:_LABEL_MAX] or "unknown"


def _check(value: str, allowed: frozenset[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, got {value!r}")
    return value


LATENCY = LatencyWindow()
"""Process-wide latency window fed by :func:`observe_model_call`."""


def observe_model_call(
    agent: str,
    provider: str,
    model: str,
    seconds: float,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    outcome: str = "ok",
) -> None:
    """Record one model call: count by outcome, duration, token usage and the latency window.

    ``outcome`` is one of :data:`MODEL_OUTCOMES` (anything else raises ``ValueError``).
    Durations of every outcome are recorded (a timeout's duration is real latency).
    Missing or negative token counts are skipped.
    """
    _check(outcome, MODEL_OUTCOMES, "outcome")
    a, p, m = safe_label(agent), safe_label(provider), safe_label(model)
    secs = _seconds(seconds)
    MODEL_CALLS.labels(agent=a, provider=p, model=m, outcome=outcome).inc()
    MODEL_CALL_SECONDS.labels(agent=a, provider=p, model=m).observe(secs)
    for kind, n in zip(TOKEN_KINDS, (prompt_tokens, completion_tokens), strict=False):
        if n is not None and n > 0:
            TOKENS.labels(agent=a, kind=kind).inc(n)
    LATENCY.record(a, secs)
    gen_ai = {"gen_ai_operation_name": GEN_AI_CHAT, "gen_ai_provider_name": p, "gen_ai_request_model": m}
    GEN_AI_OPERATION_DURATION.labels(**gen_ai, error_type="" if outcome in _MODEL_OK else outcome).observe(
        secs
    )
    for token_type, n in (("input", prompt_tokens), ("output", completion_tokens)):
        if n is not None and n >= 0 and outcome in _MODEL_OK:
            GEN_AI_TOKEN_USAGE.labels(**gen_ai, gen_ai_token_type=token_type).observe(n)
    _observe_cost(a, prompt_tokens, completion_tokens)


def observe_tool_call(agent: str, tool: str, seconds: float, outcome: str = "ok") -> None:
    """Record one tool call (``outcome`` ok|error|timeout) and its duration."""
    _check(outcome, TOOL_OUTCOMES, "outcome")
    t, a, secs = safe_label(tool), safe_label(agent), _seconds(seconds)
    TOOL_CALLS.labels(agent=a, tool=t, outcome=outcome).inc()
    TOOL_CALL_SECONDS.labels(tool=t).observe(secs)
    GEN_AI_EXECUTE_TOOL_DURATION.labels(
        gen_ai_tool_name=t,
        gen_ai_tool_type="function",
        gen_ai_agent_name=a,
        error_type="" if outcome == "ok" else outcome,
    ).observe(secs)


def observe_agent_invocation(agent: str, model: str, seconds: float, error_type: str = "") -> None:
    """Record one agent invocation (``gen_ai_invoke_agent_duration_seconds``); ``error_type``
    empty means it succeeded, otherwise a short identifier (sanitised like every label)."""
    GEN_AI_INVOKE_AGENT_DURATION.labels(
        gen_ai_agent_name=safe_label(agent),
        gen_ai_request_model=safe_label(model),
        error_type=safe_label(error_type) if error_type else "",
    ).observe(_seconds(seconds))


_PAPER_PEAK: dict[str, float] = {}
_PAPER_KINDS = {
    "total": "total_pnl",
    "day": "day_pnl",
    "realized": "realized_pnl",
    "unrealized": "unrealized_pnl",
}


def observe_paper(account: str, pnl: dict[str, float]) -> float:
    """Export a paper account's figures (a :meth:`PaperExchange.pnl` dict): equity, PnL by kind
    and the drawdown from the highest equity seen (or the start equity); returns the drawdown."""
    a = safe_label(account)
    equity = float(pnl.get("equity", 0.0))
    peak = max(_PAPER_PEAK.get(a, 0.0), equity, float(pnl.get("start_equity") or 0.0))
    _PAPER_PEAK[a] = peak
    drawdown = (peak - equity) / peak if peak > 0 else 0.0
    PAPER_EQUITY.labels(account=a).set(equity)
    for kind, key in _PAPER_KINDS.items():
        PAPER_PNL.labels(account=a, kind=kind).set(float(pnl.get(key) or 0.0))
    PAPER_DRAWDOWN.labels(account=a).set(drawdown)
    return drawdown


def observe_retry(agent: str, reason: str) -> None:
    """One model call asked again (reason timeout|repair|trim)."""
    MODEL_RETRIES.labels(agent=safe_label(agent), reason=safe_label(reason)).inc()


def observe_run(status: str, turns: int) -> None:
    """Record a finished team run: its status (e.g. ok, error, timeout, max_turns) and turns."""
    RUNS.labels(status=safe_label(status)).inc()
    RUN_TURNS.observe(max(0, int(turns)))


def observe_evaluation(evaluation: str, agent: str, score: float, outcome: str) -> None:
    """One evaluated message: its score and how it ended."""
    EVALUATION_SCORE.labels(evaluation=safe_label(evaluation), agent=safe_label(agent)).observe(
        min(1.0, max(0.0, float(score)))
    )
    labels = {"evaluation": safe_label(evaluation), "agent": safe_label(agent)}
    EVALUATIONS.labels(**labels, outcome=safe_label(outcome)).inc()


def observe_checkpoint(seconds: float, ok: bool) -> None:
    """Record one turn commit: how long the write took and whether it landed."""
    CHECKPOINTS.labels(outcome="ok" if ok else "error").inc()
    if ok:
        CHECKPOINT_SECONDS.observe(_seconds(seconds))


def render_latest() -> bytes:
    """Prometheus text exposition of :data:`REGISTRY`."""
    return generate_latest(REGISTRY)
