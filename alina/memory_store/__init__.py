"""Durable memory on Postgres: migrations and the run/message store."""

from alina.memory_store.migrate import migrate
from alina.memory_store.runs import RunBusyError, RunStore, StoreUnavailableError

__all__ = ["RunBusyError", "RunStore", "StoreUnavailableError", "migrate"]
