"""error_line: the one-line description of an exception every report and stored detail uses."""

from __future__ import annotations

from alina._errors import error_line


def test_the_class_and_the_first_line_of_the_message() -> None:
    assert error_line(ValueError("  bad value\nsecond line ")) == "ValueError: bad value"
    assert error_line(TimeoutError()) == "TimeoutError"
    assert error_line(RuntimeError("   ")) == "RuntimeError"
    assert error_line(OSError("x" * 400), 300) == "OSError: " + "x" * 300
