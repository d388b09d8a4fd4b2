"""The optimizer's state in Postgres (migration 0012): the review queue, the rejected candidates
it remembers, the model each agent runs on, and the live scores it watches.

* **Queue** (``optimizer_reviews``): a trigger on ``evaluations`` queues a review of an agent
  when a score falls below ``optimizer_settings.threshold`` (the loop writes
  ``optimizer.threshold`` there); at most one review per agent is queued at a time. A review
  claims the queued rows of its agent and closes them with its report.
* **Rejections** (``optimizer_rejections``): digest, origin, model and a summary of every refused
  candidate; the critic is shown the latest ones.
* **Models** (``agent_models``): the latest row per agent names the model it runs on (its rung
  of ``agents.NAME.ladder``); :func:`with_model_choices` applies them to a loaded config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alina.memory_store.runs import unavailable_error

__all__ = ["ModelChoice", "OptimizerStore", "QueuedReview", "Rejection", "with_model_choices"]


@dataclass(frozen=True)
class QueuedReview:
    id: int
    agent: str
    trigger: str
    score: float | None
    run_id: str | None
    queued_at: datetime


@dataclass(frozen=True)
class Rejection:
    agent: str
    digest: str
    version: int | None
    origin: str
    model: str | None
    summary: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class ModelChoice:
    agent: str
    model: str
    previous: str | None
    reason: str
    p_value: float | None
    created_at: datetime


class OptimizerStore:
    """One connection per call (the loop is not a hot path)."""

    def __init__(self, dsn: str, *, connect_timeout: int = 5) -> None:
        self._dsn = dsn
        self._connect_timeout = max(2, int(connect_timeout))

    @classmethod
    def from_config(cls, config: Any) -> OptimizerStore:
        return cls(config.postgres.dsn(), connect_timeout=int(config.postgres.connect_timeout_s))

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
        try:
            conn = await AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout, row_factory=dict_row
            )
        except psycopg.OperationalError as exc:
            raise unavailable_error(self._dsn, exc) from exc
        async with conn:
            yield conn

    # -- queue -------------------------------------------------------------------------------

    async def set_threshold(self, threshold: float) -> None:
        """The score below which a new evaluation queues a review (the trigger reads it)."""
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE optimizer_settings SET threshold = %s, updated_at = now() "
                "WHERE id AND threshold IS DISTINCT FROM %s",
                (threshold, threshold),
            )

    async def enqueue(
        self, agent: str, trigger: str, *, score: float | None = None, run_id: str | None = None
    ) -> int | None:
        """Queue a review of ``agent``; None when one is already queued."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO optimizer_reviews (agent, trigger, score, run_id) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (agent) WHERE status = 'queued' DO NOTHING RETURNING id",
                (agent, trigger, score, run_id),
            )
            row = await cur.fetchone()
            return int(row["id"]) if row else None

    async def queued(self) -> list[QueuedReview]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, agent, trigger, score, run_id, queued_at FROM optimizer_reviews "
                "WHERE status = 'queued' ORDER BY id"
            )
            return [QueuedReview(**r) for r in await cur.fetchall()]

    async def claim(self, agent: str) -> list[int]:
        """Mark ``agent``'s queued reviews running; their ids."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE optimizer_reviews SET status = 'running', started_at = now() "
                "WHERE agent = %s AND status = 'queued' RETURNING id",
                (agent,),
            )
            return [int(r["id"]) for r in await cur.fetchall()]

    async def start(self, agent: str, trigger: str) -> int:
        """A review row for a review nobody queued (manual or rolling), already running."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO optimizer_reviews (agent, trigger, status, started_at) "
                "VALUES (%s, %s, 'running', now()) RETURNING id",
                (agent, trigger),
            )
            row = await cur.fetchone()
            if row is None:
                raise RuntimeError("INSERT ... RETURNING id returned no row")
            return int(row["id"])

    async def finish(self, ids: list[int], status: str, report: Mapping[str, Any]) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE optimizer_reviews SET status = %s, finished_at = now(), report = %s "
                "WHERE id = ANY(%s)",
                (status, Jsonb(dict(report)), ids),
            )

    async def review_rows(self, agent: str | None = None) -> list[dict[str, Any]]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT id, agent, trigger, score, status, report FROM optimizer_reviews "
                "WHERE %s::text IS NULL OR agent = %s ORDER BY id",
                (agent, agent),
            )
            return list(await cur.fetchall())

    # -- scores ------------------------------------------------------------------------------

    async def rolling_scores(self, window: int) -> dict[str, tuple[float, int]]:
        """Per agent: (mean, n) of its last ``window`` evaluation scores."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT agent, avg(score) AS mean, count(*) AS n FROM ("
                " SELECT agent, score,"
                " row_number() OVER (PARTITION BY agent ORDER BY created_at DESC, id DESC) AS k"
                " FROM evaluations) e WHERE k <= %s GROUP BY agent",
                (window,),
            )
            return {r["agent"]: (float(r["mean"]), int(r["n"])) for r in await cur.fetchall()}

    async def live_scores(
        self, agent: str, version: int, *, first: int | None = None, last: int | None = None
    ) -> list[float]:
        """Per run, the mean evaluation score of ``agent`` with prompt ``version``: its ``first``
        runs (oldest first) or its ``last`` runs."""
        order = "ASC" if first is not None else "DESC"
        limit = first if first is not None else last
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT run_id, avg(score) AS mean, min(created_at) AS at FROM evaluations "
                f"WHERE agent = %s AND prompt_version = %s GROUP BY run_id ORDER BY at {order} LIMIT %s",
                (agent, version, limit),
            )
            return [float(r["mean"]) for r in await cur.fetchall()]

    # -- rejections --------------------------------------------------------------------------

    async def remember(
        self,
        agent: str,
        digest: str,
        *,
        origin: str,
        summary: str,
        reason: str,
        version: int | None = None,
        model: str | None = None,
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO optimizer_rejections (agent, digest, version, origin, model, summary, reason) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (agent, digest, model) DO UPDATE SET "
                "reason = EXCLUDED.reason, created_at = now()",
                (agent, digest, version, origin, model, summary[:500], reason[:1000]),
            )

    async def rejections(
        self, agent: str, *, limit: int = 20, since: datetime | None = None
    ) -> list[Rejection]:
        """The latest rejections of ``agent`` (newest first), only those after ``since`` if given."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT agent, digest, version, origin, model, summary, reason, created_at "
                "FROM optimizer_rejections WHERE agent = %s AND (%s::timestamptz IS NULL OR created_at > %s) "
                "ORDER BY created_at DESC, id DESC LIMIT %s",
                (agent, since, since, limit),
            )
            return [Rejection(**r) for r in await cur.fetchall()]

    async def last_change(self, agent: str) -> datetime | None:
        """When ``agent`` last got a new prompt (promotion or rollback) or a new model."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT greatest("
                " (SELECT max(decided_at) FROM prompt_history WHERE agent = %s AND activated IS NOT NULL"
                "  AND source <> 'file'),"
                " (SELECT max(created_at) FROM agent_models WHERE agent = %s)) AS at",
                (agent, agent),
            )
            row = await cur.fetchone()
            return row["at"] if row else None

    # -- models ------------------------------------------------------------------------------

    async def model_choices(self) -> dict[str, ModelChoice]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT ON (agent) agent, model, previous, reason, p_value, created_at "
                "FROM agent_models ORDER BY agent, id DESC"
            )
            return {r["agent"]: ModelChoice(**r) for r in await cur.fetchall()}

    async def set_model(
        self, agent: str, model: str, *, previous: str | None, reason: str, p_value: float | None = None
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO agent_models (agent, model, previous, reason, p_value) "
                "VALUES (%s, %s, %s, %s, %s)",
                (agent, model, previous, reason, p_value),
            )


async def with_model_choices(config: Any, store: OptimizerStore | None = None) -> Any:
    """``config`` with each agent's ``model`` replaced by the stored choice of the optimizer's
    ladder (a choice naming a model no longer configured, or not assembled, is ignored). Fails open: without
    Postgres or the table, the configured models stand."""
    import logging

    try:
        choices = await (store or OptimizerStore.from_config(config)).model_choices()
    except Exception as exc:
        logging.getLogger(__name__).warning(
            "stored model choices unavailable (%s): configured models used", exc
        )
        return config

    def runnable(key: str) -> bool:
        m = config.models.get(key)
        gguf = m.gguf_file() if m is not None and m.provider == "llamacpp" else None
        return m is not None and (gguf is None or gguf.is_file())

    agents = {
        name: agent.model_copy(update={"model": choices[name].model})
        if name in choices and choices[name].model != agent.model and runnable(choices[name].model)
        else agent
        for name, agent in config.agents.items()
    }
    if all(agents[n] is config.agents[n] for n in agents):
        return config
    return config.model_copy(update={"agents": agents})
