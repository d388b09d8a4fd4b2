"""Durable memory on Postgres: migrations and the run/message store."""

from alina.memory_store.migrate import migrate
from alina.memory_store.runs import RunStore, StoreUnavailableError

__all__ = ["RunStore", "StoreUnavailableError", "migrate"]
