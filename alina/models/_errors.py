"""Model-layer exceptions, named by who must act."""

from __future__ import annotations


class ModelError(Exception):
    """Base class: a model call did not produce a usable result."""


class ModelTimeoutError(ModelError, TimeoutError):
    """The call exceeded its timeout (retry later, or raise ``timeout_s``)."""


class ModelOutputError(ModelError):
    """The model returned output that does not parse (garbage, truncated JSON)."""


class ModelUnavailableError(ModelError):
    """The server cannot be reached or failed; the operator must check it."""


class RealModelCallBlocked(ModelError):
    """A real model request was attempted while requests are disabled (unit tests)."""
