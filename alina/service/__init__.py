"""Always-on operation: `alina serve`, `alina worker`s and `alina submit` on a Procrastinate queue
in our own Postgres (scheduled jobs exactly once, runs resumed elsewhere when a process dies).

Import the parts you need (``alina.service.submit``, ``alina.service.daemon``...); the ``serve:``
and ``jobs:`` config sections live in ``alina.settings.service``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["submit"]


async def submit(
    config: Any,
    task: str,
    *,
    priority: str = "chat",
    mode: str = "normal",
    models: dict[str, str] | None = None,
) -> str:
    """Enqueue a team run of ``task`` for any `alina serve`/`alina worker` of this queue and
    return its run id (follow it with `alina runs show ID`). See :func:`alina.service.queue.submit`."""
    from alina.service.queue import submit as _submit

    return await _submit(config, task, priority=priority, mode=mode, models=models)
