"""Hot state in Redis: the current run's status and the system mode. Fails open.

Redis is a cache here, never the record (Postgres is): when Redis is down the run goes on,
a warning is logged once and ``alina_redis_unavailable_total`` counts the misses.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from prometheus_client import Counter

from alina.monitoring.metrics import REGISTRY

log = logging.getLogger(__name__)
REDIS_UNAVAILABLE = Counter(
    "alina_redis_unavailable_total",
    "Redis operations skipped because Redis was unreachable",
    registry=REGISTRY,
)
RUN_TTL_S = 24 * 3600


class HotState:
    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self.url = url
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self._warned = False

    async def _safe(self, what: str, coro: object) -> object:
        try:
            return await coro  # type: ignore[misc]
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            REDIS_UNAVAILABLE.inc()
            if not self._warned:
                log.warning("redis at %s unavailable (%s): continuing without it", self.url, exc)
                self._warned = True
            return None

    async def ping(self) -> bool:
        return bool(await self._safe("ping", self._redis.ping()))

    async def set_run_status(self, run_id: str, status: str, task: str | None = None) -> None:
        """Record the run's live status (``alina:run:ID``), expiring after a day."""
        mapping: dict[str | bytes, str | bytes | int | float] = {
            "status": status,
            "updated_at": f"{time.time():.3f}",
        }
        if task is not None:
            mapping["task"] = task[:500]

        async def write() -> None:
            key = f"alina:run:{run_id}"
            async with self._redis.pipeline(transaction=True) as p:
                p.hset(key, mapping=mapping)  # type: ignore[arg-type]
                p.expire(key, RUN_TTL_S)
                if status == "running":
                    p.set("alina:current_run", run_id, ex=RUN_TTL_S)
                await p.execute()

        await self._safe("set_run_status", write())

    async def run_status(self, run_id: str) -> dict[str, str] | None:
        got = await self._safe("run_status", self._redis.hgetall(f"alina:run:{run_id}"))
        return dict(got) if got else None  # type: ignore[call-overload]

    async def close(self) -> None:
        await self._redis.aclose()
