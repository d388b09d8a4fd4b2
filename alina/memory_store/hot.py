"""Hot state in Redis: the live context of each run. Fails open.

Per run, ``alina:run:ID`` (a hash: status, task, turn, last speaker, update time) and
``alina:run:ID:recent`` (the last ``RECENT_MAX`` messages, newest last), both expiring after a
day; ``alina:current_run`` names the run that started last. ``alina runs show`` reads them for a
run that is still going, without touching Postgres's copy.

Secrets never reach Redis: the task and every message text are redacted
(:func:`~alina._secrets.redact_text`) before they are written, and before they are cut.

Redis is a cache here, never the record (Postgres is): when Redis is down the run goes on,
a warning is logged once and ``alina_redis_unavailable_total`` counts the skipped operations.
After a failure Redis is left alone for ``retry_after_s`` so a dead or unreachable server never
costs each turn a connect timeout.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import Counter

from alina._secrets import redact_text
from alina.memory_store.checkpoints import MessageRow
from alina.monitoring.metrics import REGISTRY

log = logging.getLogger(__name__)
REDIS_UNAVAILABLE = Counter(
    "alina_redis_unavailable_total",
    "Redis operations skipped because Redis was unreachable",
    registry=REGISTRY,
)
RUN_TTL_S = 24 * 3600
RECENT_MAX = 20  # messages of a run kept hot
RECENT_CHARS = 2000  # of each message's content


class HotState:
    def __init__(self, url: str, *, timeout_s: float = 1.0, retry_after_s: float = 5.0) -> None:
        self.url = url
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
        )
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._warned = False

    async def _safe(self, what: str, coro: Any) -> Any:
        if time.monotonic() < self._down_until:
            coro.close()  # never awaited: Redis failed moments ago
            REDIS_UNAVAILABLE.inc()
            return None
        try:
            return await coro
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            REDIS_UNAVAILABLE.inc()
            self._down_until = time.monotonic() + self.retry_after_s
            if not self._warned:
                log.warning("redis at %s unavailable (%s: %s): continuing without it", self.url, what, exc)
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
            mapping["task"] = redact_text(task)[:500]

        async def write() -> None:
            key = f"alina:run:{run_id}"
            async with self._redis.pipeline(transaction=True) as p:
                p.hset(key, mapping=mapping)  # type: ignore[arg-type]
                p.expire(key, RUN_TTL_S)
                if status == "running":
                    p.set("alina:current_run", run_id, ex=RUN_TTL_S)
                await p.execute()

        await self._safe("set_run_status", write())

    async def record_turn(self, run_id: str, turn: int, messages: Iterable[MessageRow]) -> None:
        """After a turn: the run's position (turn, last speaker) and the turn's messages, the
        run's newest ``RECENT_MAX`` kept, each content cut to ``RECENT_CHARS``."""
        messages = list(messages)
        rows = [_hot_row(m) for m in messages]
        last = messages[-1].source if messages else None

        async def write() -> None:
            key = f"alina:run:{run_id}"
            fields: dict[str | bytes, str | bytes | int | float] = {"turn": turn}
            fields["updated_at"] = f"{time.time():.3f}"
            if last is not None:
                fields["last_speaker"] = last
            async with self._redis.pipeline(transaction=True) as p:
                p.hset(key, mapping=fields)  # type: ignore[arg-type]
                p.expire(key, RUN_TTL_S)
                if rows:
                    p.rpush(f"{key}:recent", *rows)
                    p.ltrim(f"{key}:recent", -RECENT_MAX, -1)
                    p.expire(f"{key}:recent", RUN_TTL_S)
                await p.execute()

        await self._safe("record_turn", write())

    async def recent(self, run_id: str) -> list[dict[str, Any]]:
        """The run's newest messages kept hot (oldest first); [] when none or Redis is down."""
        got = await self._safe("recent", self._redis.lrange(f"alina:run:{run_id}:recent", 0, -1))
        return [json.loads(r) for r in got or []]

    async def current_run(self) -> str | None:
        """The id of the run that started last (within a day), if Redis knows it."""
        got = await self._safe("current_run", self._redis.get("alina:current_run"))
        return str(got) if got else None

    async def run_status(self, run_id: str) -> dict[str, str] | None:
        got = await self._safe("run_status", self._redis.hgetall(f"alina:run:{run_id}"))
        return dict(got) if got else None

    async def close(self) -> None:
        await self._redis.aclose()


def _hot_row(m: MessageRow) -> str:
    content = redact_text(m.content)[:RECENT_CHARS]  # redacted before the cut: no half key is left
    return json.dumps({"seq": m.seq, "source": m.source, "type": m.type, "content": content})
