"""Model-response cache in Redis: identical calls are answered without the model.

The key hashes everything that determines the answer: provider, model and sampling parameters,
the agent's prompt version, the rendered messages, the tools (full schemas), the tool choice and
the JSON mode. Entries expire after ``ttl_s``; :meth:`ResponseCache.invalidate` drops an agent's
entries when its prompt version changes (keys are namespaced by agent and prompt version, so a
new version never hits an old entry even before the old ones expire). Only deterministic calls
(temperature 0) are cached. Redis is a cache, never required: when it is down every lookup is a
miss, nothing raises, and ``alina_cache_requests_total{result="unavailable"}`` counts it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from autogen_core.models import CreateResult, LLMMessage
from autogen_core.tools import Tool, ToolSchema
from prometheus_client import Counter

from alina._secrets import redact_text
from alina.models._protocol import tool_specs
from alina.monitoring.metrics import REGISTRY

log = logging.getLogger(__name__)
CACHE_REQUESTS = Counter(
    "alina_cache_requests_total",
    "Model-response cache lookups by result (hit, miss, unavailable, corrupt; secret: a response "
    "carrying a secret, not stored)",
    ["result"],
    registry=REGISTRY,
)
_REDIS_ERRORS = (aioredis.ConnectionError, aioredis.TimeoutError, OSError)


def client_identity(client: Any) -> dict[str, Any]:
    """What about a provider client changes its answers (no secrets: never the API key)."""
    fields = (
        "provider",
        "model",
        "base_url",
        "n_ctx",
        "max_tokens",
        "temperature",
        "seed",
        "repeat_penalty",
        "tool_policy",
    )
    return {f: getattr(client, f, None) for f in fields}


class ResponseCache:
    def __init__(
        self, url: str, *, ttl_s: int = 86400, namespace: str = "alina:llm", timeout_s: float = 0.5
    ) -> None:
        self.ttl_s = ttl_s
        self.namespace = namespace
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._warned = False

    def key(
        self,
        *,
        agent: str,
        prompt_version: str,
        client: Mapping[str, Any],
        messages: Sequence[LLMMessage],
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: Any = "auto",
        json_output: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """The cache key of one call: ``NAMESPACE:AGENT:PROMPT_VERSION:sha256``."""
        if isinstance(tool_choice, Tool):
            tool_choice = {"tool": tool_choice.name}
        if isinstance(json_output, type):
            json_output = json_output.__name__
        body = {
            "client": dict(client),
            "messages": [m.model_dump(mode="json") for m in messages],
            "tools": [[s.name, s.description, s.parameters] for s in tool_specs(tools)],
            "tool_choice": tool_choice,
            "json_output": json_output,
            "extra": dict(extra or {}),
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.namespace}:{agent}:{prompt_version}:{digest}"

    def _unavailable(self, exc: BaseException) -> None:
        CACHE_REQUESTS.labels("unavailable").inc()
        if not self._warned:
            log.warning("response cache unavailable (%s): calling the model without it", exc)
            self._warned = True

    async def get(self, key: str) -> CreateResult | None:
        try:
            raw = await self._redis.get(key)
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)
            return None
        if raw is None:
            CACHE_REQUESTS.labels("miss").inc()
            return None
        try:
            result = CreateResult.model_validate_json(raw)
        except ValueError:  # pydantic's ValidationError: a corrupt entry is a miss, and goes
            CACHE_REQUESTS.labels("corrupt").inc()
            log.warning("response cache entry %s is not a valid result: dropped", key)
            with contextlib.suppress(*_REDIS_ERRORS):
                await self._redis.delete(key)
            return None
        CACHE_REQUESTS.labels("hit").inc()
        result.cached = True
        return result

    async def set(self, key: str, result: CreateResult) -> None:
        """Cache ``result`` unless it carries a secret (a key in its text or tool arguments):
        masking it would make a later hit call the tool with ``***``, so it is not stored."""
        body = result.model_dump_json()
        if redact_text(body) != body:
            CACHE_REQUESTS.labels("secret").inc()
            return
        try:
            await self._redis.set(key, body, ex=self.ttl_s)
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)

    async def invalidate(self, agent: str, prompt_version: str | None = None) -> int:
        """Delete an agent's entries (all versions, or one); returns how many were deleted."""
        pattern = f"{self.namespace}:{agent}:{prompt_version or '*'}:*"
        deleted = 0
        try:
            batch: list[Any] = []
            async for k in self._redis.scan_iter(match=pattern, count=500):
                batch.append(k)
                if len(batch) >= 500:
                    deleted += await self._redis.delete(*batch)
                    batch = []
            if batch:
                deleted += await self._redis.delete(*batch)
        except _REDIS_ERRORS as exc:
            self._unavailable(exc)
        return deleted

    async def close(self) -> None:
        await self._redis.aclose()
