"""Retention: ``alina memory prune`` deletes history beyond the limits of ``retention:`` in config.

What is pruned, backend by backend (each reported on its own; one that is down does not stop
the others):

* **Postgres**
  - *run details TTL* (``messages_ttl_days``): the messages, tool calls, routing decisions and
    events of runs that finished more than N days ago; tool calls made outside a run
    (``run_id`` NULL) older than N days too. The ``runs`` row (task, status, totals) is kept.
  - *message cap* (``max_messages``): while there are more messages than that, the details of
    the oldest finished runs go, whole runs at a time (never half a conversation).
  - *events* (``events_ttl_days``, ``max_events``): older events, then the oldest beyond the cap.
  - *checkpoints* (``checkpoints_keep_per_run``, ``checkpoints_ttl_days``): all but the last N
    of each run, and those older than the TTL. The latest checkpoint of every run is always
    kept: ``alina run --resume`` needs it, even for a run that stopped or failed.
* **Redis**: the model-response cache (keys ``alina:llm:*``, written by
  :class:`alina.models._cache.ResponseCache`) is trimmed to ``cache_max_entries`` and
  ``cache_max_mb``, least recently used first (oldest first when Redis runs an LFU policy and
  keeps no idle time). Keys are found with SCAN, never KEYS, and removed with UNLINK.
* **Vectors** (only when ``vectors_ttl_days`` is set): memories created before the cutoff.

Never touched: runs whose status is ``running`` (nothing of theirs is deleted, by any rule),
**order intents** and paper accounts (the trading audit trail: no rule here deletes from
``order_intents`` or ``paper_accounts``), the ``runs`` rows, the memory graph (entities,
relations, decisions), prompt versions and alerts.

Deletes run in batches of ``batch_size`` rows, each its own short transaction (autocommit), and
every statement re-checks its condition, so a run that is reopened meanwhile is left alone. A
dry run does the same work inside one transaction that is rolled back (the counts are exact,
interactions between rules included; nothing is deleted), and only counts in Redis and Chroma.

One module per backend (``_postgres``, ``_redis``, ``_vectors``); ``_report`` holds the report.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from alina.memory_store.retention._postgres import prune_postgres
from alina.memory_store.retention._redis import CACHE_NAMESPACE, prune_redis
from alina.memory_store.retention._report import BackendReport, PruneCount, PruneReport
from alina.memory_store.retention._vectors import prune_vectors

if TYPE_CHECKING:
    from alina.config import AlinaConfig
    from alina.memory_store.vector import VectorMemory

__all__ = ["CACHE_NAMESPACE", "BackendReport", "PruneCount", "PruneReport", "prune"]


async def prune(
    config: AlinaConfig,
    *,
    dry_run: bool = False,
    pg_dsn: str | None = None,
    redis_url: str | None = None,
    memory: VectorMemory | None = None,
    timeout_s: float = 5.0,
) -> PruneReport:
    """Apply ``config.retention`` to Postgres, the Redis response cache and the vector memory.

    ``pg_dsn`` / ``redis_url`` default to the configured servers; ``memory`` (only used when
    ``vectors_ttl_days`` is set) defaults to the configured vector memory, opened and closed
    here. Never raises for a backend that is down or fails: its section of the report says so
    (``status`` unavailable/error) and :attr:`PruneReport.ok` is False. Never deletes order
    intents, the runs themselves, or anything of a run that is still running (see the module
    docstring for every rule).
    """
    started = time.monotonic()
    rc = config.retention
    pg, rd, vec = await asyncio.gather(
        prune_postgres(rc, pg_dsn or config.postgres.dsn(), dry_run, timeout_s),
        prune_redis(rc, redis_url or config.redis.url(), dry_run, timeout_s),
        prune_vectors(config, memory, dry_run),
    )
    return PruneReport(dry_run, pg, rd, vec, time.monotonic() - started)
