"""Retention in the vector memory: memories older than ``vectors_ttl_days``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from alina._errors import error_line
from alina.memory_store.retention._report import DAY_S, BackendReport, fmt_days

if TYPE_CHECKING:
    from alina.config import AlinaConfig
    from alina.memory_store.vector import VectorMemory

__all__ = ["prune_vectors"]


async def prune_vectors(config: AlinaConfig, memory: VectorMemory | None, dry_run: bool) -> BackendReport:
    from alina.memory_store.vector import VectorConfig, VectorMemory, VectorStoreUnavailableError

    days = config.retention.vectors_ttl_days
    report = BackendReport("vectors")
    if days is None:
        report.status = "skipped"
        report.notes.append("no vector TTL configured (retention.vectors_ttl_days)")
        return report
    own = memory is None
    if memory is None:
        section = getattr(config, "memory", None)  # the vector store's section, when configured
        memory = VectorMemory(
            section if isinstance(section, VectorConfig) else None, base_dir=config.data_dir()
        )
    report.location = memory.location()
    try:
        n = await memory.expire(time.time() - days * DAY_S, dry_run=dry_run)
        report.add("vector memories", f"older than {fmt_days(days)}", n)
    except VectorStoreUnavailableError as exc:
        report.status, report.error = "unavailable", error_line(exc)
    except Exception as exc:  # any other backend failure is reported: the other backends still count
        report.status, report.error = "error", error_line(exc)
    finally:
        if own:
            await memory.close()
    return report
