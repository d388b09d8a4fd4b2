"""Routing metrics: how ALINA picks speakers (rules vs lexical vs model) and how sure it is.

Registered on :data:`alina.monitoring.metrics.REGISTRY` next to the other series:

* ``alina_routing_decisions_total{method}`` — one per routing decision; ``method`` is one of
  tool|safe|mention|rules|lexical|follow_up|done|model|fallback.
* ``alina_routing_confidence`` — the decision's confidence (0..1).
"""

from __future__ import annotations

import math

from prometheus_client import Counter, Histogram

from alina.monitoring.metrics import REGISTRY, safe_label

__all__ = ["ROUTING_CONFIDENCE", "ROUTING_DECISIONS", "observe_routing_decision"]

CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)

ROUTING_DECISIONS = Counter(
    "alina_routing_decisions_total",
    "Routing decisions (who speaks next) by method: "
    "tool|safe|mention|rules|lexical|follow_up|done|model|fallback.",
    ["method"],
    registry=REGISTRY,
)
ROUTING_CONFIDENCE = Histogram(
    "alina_routing_confidence",
    "Confidence (0..1) of each routing decision.",
    buckets=CONFIDENCE_BUCKETS,
    registry=REGISTRY,
)


def observe_routing_decision(method: str, confidence: float) -> None:
    """Count one decision by method and record its confidence (clamped to 0..1, NaN -> 0)."""
    try:
        c = float(confidence)
    except (TypeError, ValueError):
        c = 0.0
    c = min(1.0, max(0.0, c)) if math.isfinite(c) else 0.0
    ROUTING_DECISIONS.labels(method=safe_label(method)).inc()
    ROUTING_CONFIDENCE.observe(c)
