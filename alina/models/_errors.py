"""Model-layer exceptions, one class per failure the resilient client handles differently.

=========================  ================================================================
class                      what ``ResilientClient`` does
=========================  ================================================================
ModelTimeoutError          retry the same model, up to ``retries`` times
ModelUnreachableError      go to the fallback model at once (retrying a dead server is waste)
MalformedOutputError       re-ask once with the parse error appended (a repair, not a retry)
ContextOverflowError       drop the oldest non-system messages once and ask again
ModelUnavailableError      raised by ``ResilientClient`` when every option is exhausted
=========================  ================================================================

Any other ``ModelError`` goes to the fallback at once, like an unreachable server.
"""

from __future__ import annotations

import re


class ModelError(Exception):
    """Base class: a model call did not produce a usable result."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The call exceeded its timeout (retried; raise ``timeout_s`` if it keeps happening)."""


class ModelUnreachableError(ModelError):
    """The model server cannot be reached or failed the request (connection refused, DNS,
    dropped connection, an HTTP error status): the fallback model is tried at once."""


class MalformedOutputError(ModelError):
    """The model returned output that does not parse (garbage, truncated JSON, a tool call
    that does not match the tool schema)."""


ModelOutputError = MalformedOutputError
"""The earlier name of :class:`MalformedOutputError` (kept for existing callers)."""


class ContextOverflowError(ModelError):
    """The prompt does not fit the model's context window."""


class ModelUnavailableError(ModelError):
    """No model can answer: every retry and the fallback are exhausted (raised by
    ``ResilientClient``), or no model could be built (missing package, file or API key)."""


class RealModelCallBlocked(ModelError):
    """A real model request was attempted while requests are disabled (unit tests)."""


_OVERFLOW = re.compile(
    r"context[ _](window|length)|maximum context|context_length_exceeded|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def is_context_overflow(message: str) -> bool:
    """True when a server's or library's error text says the prompt exceeds the context window."""
    return bool(_OVERFLOW.search(message))
