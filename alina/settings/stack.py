"""The sections of ``config.yaml`` for the parts the stack runs on: ``paths:``, ``postgres:``,
``redis:``, ``cache:``, ``resilience:`` and ``retention:``."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, field_validator

from alina.settings._base import StrictModel as _Strict

__all__ = [
    "CacheConfig",
    "PathsConfig",
    "PostgresConfig",
    "RedisConfig",
    "ResilienceConfig",
    "RetentionConfig",
]


class PathsConfig(_Strict):
    data_dir: str = ".alina"
    """Local state: Postgres and Redis data, logs. Relative paths are relative to the project."""


class PostgresConfig(_Strict):
    host: str = "127.0.0.1"
    """Postgres server address (``alina up`` starts one on loopback)."""
    port: int = Field(55432, ge=1, le=65535)
    """Postgres port."""
    database: str = "alina"
    """Database name."""
    user: str = "postgres"
    """Role to connect as."""
    password_env: str = "ALINA_POSTGRES_PASSWORD"
    """Environment variable holding the password (none needed for the local trust setup)."""
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    """Deadline of one connection attempt."""

    def dsn(self) -> str:
        """The connection string, with the password (if any) taken from the environment."""
        password = os.environ.get(self.password_env, "")
        auth = self.user + (f":{password}" if password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    def dsn_for_display(self) -> str:
        """The connection string with the password masked (safe for logs and errors)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


class RedisConfig(_Strict):
    host: str = "127.0.0.1"
    """Redis server address (``alina up`` starts one on loopback)."""
    port: int = Field(56379, ge=1, le=65535)
    """Redis port."""
    db: int = Field(0, ge=0, le=15)
    """Redis database number."""

    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class CacheConfig(_Strict):
    enabled: bool = True
    """Answer identical deterministic (temperature 0) model calls from Redis."""
    ttl_s: int = Field(86400, ge=1, le=30 * 86400)
    """Seconds a cached model response lives."""


class ResilienceConfig(_Strict):
    """What the system does when parts fail: the system modes (``alina.runtime.modes``) and a
    Postgres outage mid-run (see README, "Resilience")."""

    recover_after_s: float = Field(60.0, gt=0, le=86400)
    """An automatic safe mode ends after the health checks have passed this long in a row."""
    store_outage_s: float = Field(120.0, gt=0, le=86400)
    """How long a run keeps retrying a turn commit that fails because Postgres cannot be reached
    (turns queue up meanwhile, in order, with back pressure); after that the run fails, keeping
    its last saved turn (``alina run --resume`` continues it)."""
    spool_max_mb: float = Field(64.0, gt=0, le=1_048_576, allow_inf_nan=False)
    """Operational events written while Postgres is down go to a local spool file of at most this
    size (``<data_dir>/spool/events-<pid>.jsonl``); they are flushed, in order, once it is back.
    Events that do not fit are dropped and counted (``alina_events_dropped_total``)."""


class RetentionConfig(_Strict):
    """How much history ``alina memory prune`` keeps. ``null`` = unlimited (no rule).

    Runs that are still ``running`` are never touched; the latest checkpoint of every run is
    always kept (resume needs it); order intents (the trading audit) are never deleted.
    """

    messages_ttl_days: float | None = Field(90.0, gt=0, le=36500, allow_inf_nan=False)
    """A finished run's details (messages, tool calls, routing decisions, its events) are deleted
    this many days after it finished. The ``runs`` row itself (task, status, totals) is kept."""
    max_messages: int | None = Field(1_000_000, ge=1, le=10**12)
    """At most this many messages in total: the details of the oldest finished runs go first
    (whole runs, never half a conversation)."""
    events_ttl_days: float | None = Field(30.0, gt=0, le=36500, allow_inf_nan=False)
    """Events older than this are deleted (except those of running runs)."""
    max_events: int | None = Field(5_000_000, ge=1, le=10**12)
    """At most this many events: the oldest go first (except those of running runs)."""
    checkpoints_keep_per_run: int | None = Field(3, ge=1, le=100_000)
    """Keep the last N checkpoints of each run (the latest is always kept)."""
    checkpoints_ttl_days: float | None = Field(7.0, gt=0, le=36500, allow_inf_nan=False)
    """Checkpoints older than this are deleted, except the latest of each run."""
    cache_max_entries: int | None = Field(100_000, ge=1, le=10**10)
    """At most this many model responses in the Redis cache (least recently used go first);
    entries also expire after ``cache.ttl_s``."""
    cache_max_mb: float | None = Field(256.0, gt=0, le=1_048_576, allow_inf_nan=False)
    """At most this much memory (MiB, as Redis MEMORY USAGE counts it) for cached responses."""
    vectors_ttl_days: float | None = Field(None, gt=0, le=36500, allow_inf_nan=False)
    """Vector memories (lessons, outcomes...) older than this are deleted; null keeps them."""
    batch_size: int = Field(5000, ge=1, le=100_000)
    """Rows (or keys) deleted per statement: each batch is its own short transaction, so
    pruning a huge table never holds its locks for long."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number or null, not true/false")
        return value
