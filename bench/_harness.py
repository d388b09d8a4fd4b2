"""The benchmark harness: registry, timing and statistics helpers, and the result writer.

A benchmark is one module ``bench/NAME.py`` (a name not starting with ``_``) exposing
``run(reps: int, quick: bool) -> Result``; its docstring's first line is its description.
Nothing else needs editing to add one: :func:`available` discovers the modules.

Company rules the helpers encode: measure side by side with the anchor in the same run,
repeat, report medians and ratios, write ``bench/results/NAME.json`` (raw figures and a
``goals`` list) and ``bench/results/NAME.md``, print progress for every long step.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_REPS = 5
QUICK_REPS = 2


# -- registry ------------------------------------------------------------------------------------
class UnknownBenchmark(LookupError):
    """Raised for a benchmark name that has no ``bench/NAME.py`` module."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = list(known)
        listed = ", ".join(self.known) or "(none)"
        super().__init__(f"unknown benchmark {name!r}; available: {listed}")


def available(package_dir: Path = BENCH_DIR) -> list[str]:
    """Names of the benchmark modules in ``package_dir``, sorted."""
    return sorted(
        m.name for m in pkgutil.iter_modules([str(package_dir)]) if not m.name.startswith("_") and not m.ispkg
    )


def load(name: str, package: str = "bench", package_dir: Path = BENCH_DIR) -> ModuleType:
    """The module of benchmark ``name``; :class:`UnknownBenchmark` if there is none."""
    known = available(package_dir)
    if name not in known:
        raise UnknownBenchmark(name, known)
    module = importlib.import_module(f"{package}.{name}")
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"benchmark module {package}.{name} has no run(reps, quick) function")
    return module


def describe(module: ModuleType) -> str:
    """First line of a benchmark module's docstring."""
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


# -- statistics and timing -----------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    """Median of the finite values; NaN when there are none (e.g. every rep was dropped)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(value: float | None, anchor: float | None) -> float:
    """``value / anchor``; NaN when the anchor is zero or either side is missing or not finite."""
    if value is None or anchor is None:
        return math.nan
    if not (math.isfinite(value) and math.isfinite(anchor)) or anchor == 0:
        return math.nan
    return value / anchor


@dataclass
class Stopwatch:
    """Elapsed seconds of a ``with stopwatch() as sw:`` block (``time.perf_counter``)."""

    start: float = 0.0
    elapsed: float = math.nan


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    sw = Stopwatch(start=time.perf_counter())
    try:
        yield sw
    finally:
        sw.elapsed = time.perf_counter() - sw.start


_T0 = time.perf_counter()


def progress(message: str) -> None:
    """One progress line on stderr, with seconds since the harness started."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# -- results -------------------------------------------------------------------------------------
@dataclass
class Goal:
    """A target a benchmark figure must reach; ``met`` is False for a NaN value."""

    name: str
    value: float
    target: float
    higher_is_better: bool = True

    @property
    def met(self) -> bool:
        if not math.isfinite(self.value):
            return False
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _finite_or_none(self.value),
            "target": self.target,
            "met": self.met,
        }


def machine_info() -> dict[str, Any]:
    try:
        llama_version: str | None = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        llama_version = None
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "llama_cpp_python": llama_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class Result:
    """What a benchmark returns: headline table, goals, raw figures; written as JSON + markdown.

    ``headers``/``rows`` are the main figures (medians and ratios) as shown in the markdown and
    on the console; ``raw`` holds everything else (per-rep figures, parameters) for the JSON.
    """

    name: str
    title: str
    headers: list[str]
    rows: list[list[Any]]
    goals: list[Goal] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine_info)

    @property
    def all_met(self) -> bool:
        return all(g.met for g in self.goals)

    def to_json(self) -> dict[str, Any]:
        return _jsonable(
            {
                "name": self.name,
                "title": self.title,
                "machine": self.machine,
                "params": self.params,
                "goals": [g.to_dict() for g in self.goals],
                "summary": {"headers": self.headers, "rows": self.rows},
                "notes": self.notes,
                "raw": self.raw,
            }
        )

    def to_markdown(self) -> str:
        m = self.machine
        lines = [
            f"# {self.title}",
            "",
            f"`python -m bench {self.name}` — {m.get('date')} — {m.get('cpu_count')} CPUs, "
            f"Python {m.get('python')}, {m.get('platform')}, "
            f"llama-cpp-python {m.get('llama_cpp_python')}",
            "",
        ]
        if self.params:
            lines += ["Parameters: " + ", ".join(f"{k}={v}" for k, v in self.params.items()), ""]
        if self.goals:
            lines += [
                "## Goals",
                "",
                markdown_table(
                    ["goal", "value", "target", "met"],
                    [
                        [
                            g.name,
                            g.value,
                            ("≥ " if g.higher_is_better else "≤ ") + fmt(g.target),
                            "yes" if g.met else "**NO**",
                        ]
                        for g in self.goals
                    ],
                ),
                "",
            ]
        lines += ["## Results (medians)", "", markdown_table(self.headers, self.rows), ""]
        if self.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        lines += [f"Raw per-repetition figures: `{self.name}.json`.", ""]
        return "\n".join(lines)

    def write(self, out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, md_path = out_dir / f"{self.name}.json", out_dir / f"{self.name}.md"
        json_path.write_text(json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
        md_path.write_text(self.to_markdown(), encoding="utf-8")
        return json_path, md_path

    def console(self) -> str:
        """The headline table and goals as plain text for the terminal."""
        out = [text_table(self.headers, self.rows)]
        if self.goals:
            out.append(
                text_table(
                    ["goal", "value", "target", "met"],
                    [
                        [
                            g.name,
                            g.value,
                            ("≥ " if g.higher_is_better else "≤ ") + fmt(g.target),
                            "yes" if g.met else "NO",
                        ]
                        for g in self.goals
                    ],
                )
            )
        return "\n\n".join(out)


# -- formatting ----------------------------------------------------------------------------------
def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(headers)] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _jsonable(obj: Any) -> Any:
    """NaN/inf become null (strict JSON); tuples become lists; Paths become strings."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return _finite_or_none(obj)
