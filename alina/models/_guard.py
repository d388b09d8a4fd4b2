"""A global switch that makes every real model request fail (for unit tests).

Unit tests run with requests disabled, so a test that accidentally builds a real client fails
loudly instead of spending minutes on the CPU. Integration tests enable them explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from alina.models._errors import RealModelCallBlocked

_allowed = os.environ.get("ALINA_ALLOW_MODEL_REQUESTS", "1") != "0"


def model_requests_allowed() -> bool:
    return _allowed


def set_model_requests_allowed(allowed: bool) -> None:
    global _allowed
    _allowed = allowed


@contextmanager
def allow_model_requests(allowed: bool = True) -> Iterator[None]:
    """Temporarily allow (or block) real model requests."""
    global _allowed
    before, _allowed = _allowed, allowed
    try:
        yield
    finally:
        _allowed = before


def check_model_request(provider: str) -> None:
    """Raise :class:`RealModelCallBlocked` when real requests are disabled."""
    if not _allowed:
        raise RealModelCallBlocked(
            f"real model request to provider {provider!r} blocked: model requests are disabled "
            "(unit tests use ReplayChatCompletionClient; mark the test 'integration' to use a model)"
        )
