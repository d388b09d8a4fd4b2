"""Durable memory on Postgres: migrations and the run/message store."""

from alina.memory_store.database import Database
from alina.memory_store.migrate import migrate
from alina.memory_store.runs import RunBusyError, RunStore, RunTotals, StoreUnavailableError

__all__ = ["Database", "RunBusyError", "RunStore", "RunTotals", "StoreUnavailableError", "migrate"]
