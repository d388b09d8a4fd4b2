"""Benchmarks of alina, each measured side by side with its anchor: ``python -m bench NAME``.

See :mod:`bench._harness` for how to add one (one module ``bench/NAME.py`` with ``run``).
"""

from bench._harness import (
    Goal,
    Result,
    UnknownBenchmark,
    available,
    load,
    median,
    progress,
    ratio,
    stopwatch,
)

__all__ = [
    "Goal",
    "Result",
    "UnknownBenchmark",
    "available",
    "load",
    "median",
    "progress",
    "ratio",
    "stopwatch",
]
