"""The in-process latency window: the last model-call latencies per agent, and their percentiles.

:class:`LatencyWindow` is a thread-safe ring buffer per agent; the process-wide instance,
``LATENCY``, lives in :mod:`alina.monitoring.metrics` (fed by ``observe_model_call``), which
re-exports the class. Read by the ``system_health`` tool.
"""

from __future__ import annotations

import math
import threading
from collections import deque

__all__ = ["LatencyWindow"]


def _seconds(value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) and v > 0 else 0.0


class LatencyWindow:
    """Thread-safe ring buffer of the last ``maxlen`` model-call latencies per agent."""

    def __init__(self, maxlen: int = 200) -> None:
        """Keep at most ``maxlen`` latencies for each agent."""
        if maxlen < 1:
            raise ValueError("maxlen must be >= 1")
        self.maxlen = maxlen
        self._data: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def record(self, agent: str, seconds: float) -> None:
        """Append one latency (seconds) for ``agent``; the oldest drops out when full."""
        with self._lock:
            self._data.setdefault(agent, deque(maxlen=self.maxlen)).append(_seconds(seconds))

    def clear(self) -> None:
        """Forget all recorded latencies."""
        with self._lock:
            self._data.clear()

    @staticmethod
    def percentile(values: list[float], q: float) -> float:
        """Linear-interpolated percentile (``q`` in 0..100) of ``values`` (numpy's default); 0.0
        for no values."""
        if not values:
            return 0.0
        import numpy as np  # here: most importers of the metrics never ask for a percentile

        return float(np.percentile(values, q))

    def stats(self) -> dict[str, dict[str, float]]:
        """``{agent: {"calls", "p50_s", "p95_s", "last_s"}}`` over the buffered latencies.

        ``calls`` is the number of latencies in the window (at most ``maxlen``).
        """
        with self._lock:
            snapshot = {a: list(d) for a, d in self._data.items() if d}
        return {
            agent: {
                "calls": len(vals),
                "p50_s": self.percentile(vals, 50),
                "p95_s": self.percentile(vals, 95),
                "last_s": vals[-1],
            }
            for agent, vals in sorted(snapshot.items())
        }
