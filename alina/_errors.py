"""One line that says what an exception was: for reports, logs and stored details."""

from __future__ import annotations

__all__ = ["error_line"]


def error_line(exc: BaseException, limit: int | None = None) -> str:
    """``ClassName: first line of the message`` (that line cut to ``limit`` characters), or the
    class name alone when the message is empty."""
    text = str(exc).strip()
    first = text.splitlines()[0][:limit] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
