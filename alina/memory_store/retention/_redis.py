"""Retention in Redis: the model-response cache trimmed to its entry and size limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from alina._errors import error_line
from alina.memory_store.retention._report import BackendReport

if TYPE_CHECKING:
    from alina.config import RetentionConfig

__all__ = ["CACHE_NAMESPACE", "prune_redis"]

CACHE_NAMESPACE = "alina:llm"
"""Key prefix of the model-response cache (``ResponseCache``'s default namespace; a test keeps
the two equal)."""


async def prune_redis(rc: RetentionConfig, url: str, dry_run: bool, timeout_s: float) -> BackendReport:
    report = BackendReport("redis", url)
    max_entries, max_mb = rc.cache_max_entries, rc.cache_max_mb
    if max_entries is None and max_mb is None:
        report.status = "skipped"
        report.notes.append("no cache limit configured (retention.cache_max_entries / cache_max_mb)")
        return report
    client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        await _trim_cache(client, rc, report, dry_run)
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
        report.status, report.error = "unavailable", error_line(exc)
    except aioredis.RedisError as exc:
        report.status, report.error = "error", error_line(exc)
    finally:
        await client.aclose()
    return report


async def _trim_cache(
    client: aioredis.Redis, rc: RetentionConfig, report: BackendReport, dry_run: bool
) -> None:
    max_entries, max_mb = rc.cache_max_entries, rc.cache_max_mb
    max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
    keys: list[bytes] = [k async for k in client.scan_iter(match=f"{CACHE_NAMESPACE}:*", count=1000)]
    limits = " and ".join(
        ([f"max {max_entries} entries"] if max_entries is not None else [])
        + ([f"max {max_mb:g} MiB"] if max_mb is not None else [])
    )
    over_count = max_entries is not None and len(keys) > max_entries
    if not over_count and max_bytes is None:
        report.add("cache entries", f"{limits}, least recently used first", 0)
        report.notes.append(f"{len(keys)} cache entries")
        return
    # Idle time (LRU) and size of every entry, pipelined; OBJECT/MEMORY do not touch the keys.
    idle: list[Any] = []
    sizes: list[Any] = []
    order = "least recently used"
    for s in range(0, len(keys), 1000):
        chunk = keys[s : s + 1000]
        pipe = client.pipeline(transaction=False)
        for k in chunk:
            pipe.object("idletime", k)
            if max_bytes is not None:
                pipe.memory_usage(k)
        res = await pipe.execute(raise_on_error=False)
        step = 2 if max_bytes is not None else 1
        idle += res[0::step]
        if max_bytes is not None:
            sizes += res[1::step]
    if any(isinstance(v, aioredis.ResponseError) for v in idle):
        # An LFU maxmemory policy keeps no idle time: fall back to age (least remaining TTL first).
        order = "oldest"
        idle = []
        for s in range(0, len(keys), 1000):
            pipe = client.pipeline(transaction=False)
            for k in keys[s : s + 1000]:
                pipe.pttl(k)
            idle += [-int(v) if isinstance(v, int) and v >= 0 else 0 for v in await pipe.execute()]
    rows = [
        (k, int(i) if isinstance(i, int) else -1, int(b) if isinstance(b, int) else 0)
        for k, i, b in zip(keys, idle, sizes or [0] * len(keys), strict=True)
        if i is not None  # None: the key expired since the SCAN
    ]
    rows.sort(key=lambda r: (-r[1], r[0]))  # most idle (or oldest) first
    count, total_bytes = len(rows), sum(r[2] for r in rows)
    victims: list[bytes] = []
    for key, _idle, size in rows:
        over = (max_entries is not None and count > max_entries) or (
            max_bytes is not None and total_bytes > max_bytes
        )
        if not over:
            break
        victims.append(key)
        count -= 1
        total_bytes -= size
    deleted = len(victims)
    if not dry_run and victims:
        deleted = 0
        for s in range(0, len(victims), rc.batch_size):
            deleted += int(await client.unlink(*victims[s : s + rc.batch_size]))
    report.add("cache entries", f"{limits}, {order} first", deleted)
    report.notes.append(
        f"{len(rows)} cache entries ({sum(r[2] for r in rows)} bytes) before, "
        f"{len(rows) - len(victims)} ({total_bytes} bytes) after"
    )
