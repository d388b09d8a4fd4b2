"""The governor: at most N model calls in flight per model server, admitted by priority.

One :class:`Governor` per process per model server (see :func:`shared_governor`) is shared by
every team and agent in the process. With a Redis URL it also caps calls across processes that
share the server: each admitted call holds a *lease* in a Redis sorted set (member = lease id,
score = expiry in ms of Redis server time), taken by a Lua script only while fewer than N
unexpired leases exist and renewed by a heartbeat while the call runs. A process that dies
stops renewing, so its leases expire after ``lease_ttl_s`` and free their slots. When Redis is
unreachable the governor keeps the process-local cap, counts the fallback and retries Redis
after a cool-down.

Priorities, highest first: ``risk > trading > monitoring > chat > optimization``. When a slot
frees, the waiting caller of the highest class gets it; FIFO within a class. Across processes
the order is best effort (each process admits its own callers in order, then competes for a
lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from alina.monitoring import metrics

log = logging.getLogger(__name__)

Priority = Literal["risk", "trading", "monitoring", "chat", "optimization"]
PRIORITIES: tuple[Priority, ...] = ("risk", "trading", "monitoring", "chat", "optimization")
"""Priority classes, highest first."""

AGENT_PRIORITY: dict[str, Priority] = {
    "risk": "risk",  # model calls made by risk checks
    "trader": "trading",
    "monitor": "monitoring",
    "alina": "chat",
    "selector": "chat",
    "optimizer": "optimization",
}


def priority_for(agent: str) -> Priority:
    """The priority class of an agent's (or caller label's) model calls; ``chat`` if unknown."""
    return AGENT_PRIORITY.get(agent, "chat")


# Take a lease if fewer than ARGV[1] unexpired leases exist. Redis server time, so processes
# with skewed clocks agree on expiry. Returns 1 when taken, else 0.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) * 2)
  return 1
end
return 0
"""
# Push a held lease's expiry forward (XX: a lease that already expired is not revived).
_RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return n
"""
_COUNT = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
_SCRIPTS = {"acquire": _ACQUIRE, "renew": _RENEW, "count": _COUNT}


class Governor:
    """At most ``limit`` model calls in flight, admitted by priority class.

    Use ``async with governor.slot("trading"):`` around one model call. ``set_limit(n)`` changes
    the cap at run time (monitoring adjusts it); raising it admits waiters at once, lowering it
    lets the calls in flight finish and admits no one until the count is below the new cap.
    """

    def __init__(
        self,
        limit: int = 4,
        *,
        name: str = "local",
        redis_url: str | None = None,
        lease_ttl_s: float = 30.0,
        poll_s: float = 0.02,
        redis_retry_s: float = 30.0,
    ) -> None:
        """``redis_url`` enables cross-process leases under the key ``alina:governor:<name>``;
        ``lease_ttl_s`` is how long a dead holder's lease lives; ``poll_s`` how often a caller
        waiting for a lease asks Redis again; ``redis_retry_s`` how long Redis is left alone
        after it failed."""
        if limit < 1:
            raise ValueError(f"governor limit must be at least 1, got {limit}")
        if lease_ttl_s <= 0:
            raise ValueError(f"lease_ttl_s must be positive, got {lease_ttl_s}")
        self.name = name
        self.redis_url = redis_url
        self.lease_ttl_s = lease_ttl_s
        self.poll_s = poll_s
        self.redis_retry_s = redis_retry_s
        self.key = f"alina:governor:{name}"
        self._limit = limit
        self._in_flight = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap: (class, seq, future)
        self._seq = itertools.count()
        self._redis: Any = None
        self._redis_loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._redis_down_until = 0.0
        self._label = metrics.safe_label(name)
        metrics.GOVERNOR_LIMIT.labels(governor=self._label).set(limit)

    # -- the cap -------------------------------------------------------------------------------
    @property
    def limit(self) -> int:
        return self._limit

    @property
    def in_flight(self) -> int:
        """Calls of this process holding a slot now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Callers of this process queued for a slot now."""
        return sum(1 for *_, f in self._waiters if not f.done())

    def set_limit(self, n: int) -> None:
        """Allow at most ``n`` calls in flight from now on (ValueError for n < 1)."""
        if n < 1:
            raise ValueError(f"governor limit must be at least 1, got {n}")
        self._limit = n
        metrics.GOVERNOR_LIMIT.labels(governor=self._label).set(n)
        self._admit()

    # -- admission -----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority | str = "chat") -> AsyncIterator[None]:
        """Hold one slot (and, with Redis, one lease) for the duration of the block."""
        rank = PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index("chat")
        start = time.perf_counter()
        await self._take_local(rank)
        lease: str | None = None
        heartbeat: asyncio.Task[None] | None = None
        try:
            if self.redis_url is not None:
                lease = await self._take_lease()
                if lease is not None:
                    heartbeat = asyncio.create_task(self._heartbeat(lease))
            metrics.MODEL_QUEUE_WAIT_SECONDS.labels(priority=PRIORITIES[rank]).observe(
                time.perf_counter() - start
            )
            metrics.MODEL_CALLS_IN_FLIGHT.labels(governor=self._label).inc()
            try:
                yield
            finally:
                metrics.MODEL_CALLS_IN_FLIGHT.labels(governor=self._label).dec()
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if lease is not None:
                await self._drop_lease(lease)
            self._release_local()

    async def _take_local(self, rank: int) -> None:
        if self._in_flight < self._limit and not self._waiters:
            self._in_flight += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # admitted, then cancelled: give the slot back
                self._release_local()
            else:
                self._waiters = [w for w in self._waiters if w[2] is not fut]
                heapq.heapify(self._waiters)
            raise

    def _release_local(self) -> None:
        self._in_flight -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self._in_flight < self._limit:
            *_, fut = heapq.heappop(self._waiters)
            if not fut.done():
                self._in_flight += 1
                fut.set_result(None)

    # -- Redis leases --------------------------------------------------------------------------
    def _client(self) -> Any:
        """The Redis client for the running event loop (connections are bound to a loop)."""
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis_loop is not loop:
            import redis.asyncio as aioredis

            url = str(self.redis_url)
            self._redis = aioredis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
            self._redis_loop = loop
            # EVALSHA after the first call: the script body is not resent with every lease.
            self._scripts = {n: self._redis.register_script(s) for n, s in _SCRIPTS.items()}
        return self._redis

    async def _run(self, script: str, *args: Any) -> Any:
        self._client()
        return await self._scripts[script](keys=[self.key], args=list(args))

    def _redis_failed(self, exc: Exception, doing: str) -> None:
        metrics.GOVERNOR_REDIS_FALLBACKS.labels(governor=self._label).inc()
        if time.monotonic() >= self._redis_down_until:
            log.warning(
                "governor %s: Redis at %s failed to %s (%s); using the process-local cap for %gs",
                self.name,
                self.redis_url,
                doing,
                exc,
                self.redis_retry_s,
            )
        self._redis_down_until = time.monotonic() + self.redis_retry_s

    async def _take_lease(self) -> str | None:
        """A lease id once Redis grants one; None when Redis is unavailable (local cap only)."""
        import redis

        if time.monotonic() < self._redis_down_until:
            metrics.GOVERNOR_REDIS_FALLBACKS.labels(governor=self._label).inc()
            return None
        lease = uuid.uuid4().hex
        ttl_ms = int(self.lease_ttl_s * 1000)
        try:
            # Polling, not a notification: a slot freed by a dead process only shows by expiry.
            while True:
                if await self._run("acquire", self._limit, lease, ttl_ms):
                    break
                await asyncio.sleep(self.poll_s)
        except (redis.RedisError, OSError) as exc:
            self._redis_failed(exc, "grant a lease")
            return None
        return lease

    async def _heartbeat(self, lease: str) -> None:
        import redis

        ttl_ms = int(self.lease_ttl_s * 1000)
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            try:
                await self._run("renew", lease, ttl_ms)
            except (redis.RedisError, OSError) as exc:
                self._redis_failed(exc, "renew a lease")
                return

    async def _drop_lease(self, lease: str) -> None:
        import redis

        try:
            await self._client().zrem(self.key, lease)
        except (redis.RedisError, OSError) as exc:  # it expires by itself
            self._redis_failed(exc, "release a lease")

    async def leases(self) -> int:
        """Unexpired leases in Redis for this governor's key, across all processes."""
        return int(await self._run("count"))

    async def close(self) -> None:
        """Close the Redis connection (the governor stays usable; it reconnects on demand)."""
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()
            self._redis = None


# -- one governor per process per model server ----------------------------------------------------
_GOVERNORS: dict[tuple[str, str | None], Governor] = {}


def process_governors() -> list[Governor]:
    """Every governor this process made through :func:`shared_governor` (what the monitor's
    actions lower and restore)."""
    return list(_GOVERNORS.values())


def shared_governor(
    server: str, *, limit: int = 4, redis_url: str | None = None, lease_ttl_s: float = 30.0
) -> Governor:
    """The process-wide governor for model server ``server`` (created on first use with
    ``limit``; later calls get the same one whatever they pass: adjust it with ``set_limit``)."""
    key = (server, redis_url)
    gov = _GOVERNORS.get(key)
    if gov is None:
        gov = _GOVERNORS[key] = Governor(limit, name=server, redis_url=redis_url, lease_ttl_s=lease_ttl_s)
    return gov


def reset_governors() -> None:
    """Forget the shared governors (tests)."""
    _GOVERNORS.clear()
