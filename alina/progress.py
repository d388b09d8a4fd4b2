"""Progress for the steps that take seconds: a rich spinner or bar on stderr, or nothing.

Shown only to a person at a terminal: quiet under ``--json`` and whenever stdout or stderr is
not a terminal (a pipe, a file, CI), so machine-read output never carries spinner frames.
Transient: once a step is done its line disappears (commands print their own result).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["Step", "shows_progress", "step", "track"]

T = TypeVar("T")


def _tty(stream: IO[str] | Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def shows_progress(*, quiet: bool = False, stdout: Any = None, stderr: Any = None) -> bool:
    """Whether progress is drawn: not ``quiet`` (``--json``) and stdout and stderr both terminals."""
    return not quiet and _tty(stdout or sys.stdout) and _tty(stderr or sys.stderr)


class Step:
    """A running step: :meth:`update` changes its text, :meth:`advance` moves its bar."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress, self._task = progress, task

    def update(
        self, label: str | None = None, *, total: float | None = None, completed: float | None = None
    ) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=label, total=total, completed=completed)

    def advance(self, n: float = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)


def _progress(console: Console, bar: bool) -> Progress:
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns += [BarColumn(bar_width=24), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    return Progress(*columns, console=console, transient=True)


@contextlib.contextmanager
def step(label: str, *, quiet: bool = False, total: float | None = None) -> Iterator[Step]:
    """A spinner (or a bar when ``total`` is given) with ``label`` and the elapsed time while
    the block runs; nothing at all when :func:`shows_progress` is false."""
    if not shows_progress(quiet=quiet):
        yield Step(None, None)
        return
    progress = _progress(Console(stderr=True), bar=total is not None)
    with progress:
        yield Step(progress, progress.add_task(label, total=total))


def track(items: Iterable[T], label: str, *, total: int | None = None, quiet: bool = False) -> Iterator[T]:
    """``items`` with a progress bar (``total`` defaults to ``len(items)``), quiet as :func:`step`."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with step(label, quiet=quiet, total=total) as s:
        for item in items:
            yield item
            s.advance()
