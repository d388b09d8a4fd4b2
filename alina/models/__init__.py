"""Model layer: provider clients behind one contract, plus timeout/retry/fallback/governor.

Providers (chosen per agent in config.yaml): ``llamacpp`` (embedded, in-process), ``ollama``
(native API) and ``openai`` (any OpenAI-compatible server). All of them make tool calls
through grammar-constrained JSON (see ``_protocol``), so a 135M model and a 7B model on Ollama
run the same agents.
"""

from alina.models._client import Completion, JsonToolClient
from alina.models._errors import (
    ContextOverflowError,
    MalformedOutputError,
    ModelError,
    ModelOutputError,
    ModelTimeoutError,
    ModelUnavailableError,
    ModelUnreachableError,
    RealModelCallBlocked,
)
from alina.models._factory import build_agent_client, build_provider, governor_for, model_server
from alina.models._governor import PRIORITIES, Governor, priority_for, shared_governor
from alina.models._guard import allow_model_requests, model_requests_allowed, set_model_requests_allowed
from alina.models._resilient import (
    CallRecord,
    OnExhausted,
    ResilientClient,
    clear_fallback_preference,
    prefer_fallback,
    prefers_fallback,
)
from alina.models._wrapper import WrappedClient

__all__ = [
    "PRIORITIES",
    "CallRecord",
    "Completion",
    "ContextOverflowError",
    "Governor",
    "JsonToolClient",
    "MalformedOutputError",
    "ModelError",
    "ModelOutputError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "ModelUnreachableError",
    "OnExhausted",
    "RealModelCallBlocked",
    "ResilientClient",
    "WrappedClient",
    "allow_model_requests",
    "build_agent_client",
    "build_provider",
    "clear_fallback_preference",
    "governor_for",
    "model_requests_allowed",
    "model_server",
    "prefer_fallback",
    "prefers_fallback",
    "priority_for",
    "set_model_requests_allowed",
    "shared_governor",
]
