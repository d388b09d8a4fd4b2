"""Memory metrics: retrieval before model calls (RAG) and what runs leave in memory.

Registered on :data:`alina.monitoring.metrics.REGISTRY` next to the other series:

* ``alina_memory_retrievals_total{outcome}`` — one per retrieval before a model call; outcome
  ok (something retrieved) | empty (nothing above min_score) | timeout (skipped, too slow) |
  error (the store or the embedder failed: retrieval is then disabled) | disabled.
* ``alina_memory_retrieval_seconds`` — how long a retrieval took (embedding + vector search).
* ``alina_memory_available`` — 1 while retrieval works, 0 once it was disabled (fail-open).
* ``alina_memory_writes_total{store,outcome}`` — writes after a run: store vectors|graph,
  outcome ok|error; ``alina_memory_items_total{store}`` counts the memories / relations written.
* ``alina_answer_contradictions_total{agent}`` — finished runs whose answer named a health or
  trend state other than the monitor's / trader's report (the graph's ``contradicted`` facts):
  a rising rate means the answering model no longer follows its team.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from alina.monitoring.metrics import REGISTRY, safe_label

__all__ = [
    "ANSWER_CONTRADICTIONS",
    "MEMORY_AVAILABLE",
    "MEMORY_ITEMS",
    "MEMORY_RETRIEVALS",
    "MEMORY_RETRIEVAL_SECONDS",
    "MEMORY_WRITES",
    "RETRIEVAL_OUTCOMES",
    "observe_contradiction",
    "observe_memory_write",
    "observe_retrieval",
    "set_memory_available",
]

RETRIEVAL_OUTCOMES = frozenset({"ok", "empty", "timeout", "error", "disabled"})
RETRIEVAL_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

MEMORY_RETRIEVALS = Counter(
    "alina_memory_retrievals_total",
    "Retrievals before model calls by outcome: ok|empty|timeout|error|disabled.",
    ["outcome"],
    registry=REGISTRY,
)
MEMORY_RETRIEVAL_SECONDS = Histogram(
    "alina_memory_retrieval_seconds",
    "Time to retrieve memories before one model call (embedding + vector search), in seconds.",
    buckets=RETRIEVAL_BUCKETS,
    registry=REGISTRY,
)
MEMORY_AVAILABLE = Gauge(
    "alina_memory_available",
    "1 while retrieval (RAG) works, 0 once it was disabled after a failure (runs go on without).",
    registry=REGISTRY,
)
MEMORY_WRITES = Counter(
    "alina_memory_writes_total",
    "Writes of what a run leaves in memory, by store (vectors|graph) and outcome (ok|error).",
    ["store", "outcome"],
    registry=REGISTRY,
)
MEMORY_ITEMS = Counter(
    "alina_memory_items_total",
    "Memories (vectors) and relations (graph) written after runs.",
    ["store"],
    registry=REGISTRY,
)

ANSWER_CONTRADICTIONS = Counter(
    "alina_answer_contradictions_total",
    "Answers that named a health or trend state other than the specialist's report, by that specialist.",
    ["agent"],
    registry=REGISTRY,
)


def observe_contradiction(agent: str) -> None:
    """One answer contradicted ``agent``'s report."""
    ANSWER_CONTRADICTIONS.labels(agent=safe_label(agent)).inc()


def observe_retrieval(outcome: str, seconds: float | None = None) -> None:
    """Count one retrieval (``outcome`` in :data:`RETRIEVAL_OUTCOMES`) and, if given, its time."""
    if outcome not in RETRIEVAL_OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(RETRIEVAL_OUTCOMES)}, got {outcome!r}")
    MEMORY_RETRIEVALS.labels(outcome=outcome).inc()
    if seconds is not None and seconds >= 0:
        MEMORY_RETRIEVAL_SECONDS.observe(seconds)


def set_memory_available(available: bool) -> None:
    """Whether retrieval works (1) or was disabled (0)."""
    MEMORY_AVAILABLE.set(1 if available else 0)


def observe_memory_write(store: str, ok: bool, items: int = 0) -> None:
    """One write after a run to ``store`` (vectors|graph) and how many items it stored."""
    s = safe_label(store)
    MEMORY_WRITES.labels(store=s, outcome="ok" if ok else "error").inc()
    if ok and items > 0:
        MEMORY_ITEMS.labels(store=s).inc(items)
