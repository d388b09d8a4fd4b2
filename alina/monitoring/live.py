"""One entry point for long-running processes (``alina chat``, ``alina serve``, notebooks): the
observer (alert rules on this process's live figures, their actions, operators' approvals) and,
with a port, the metrics server (``/metrics``, ``/healthz``, ``POST /alerts`` into the same
observer).

    async with observability(cfg, modes=runner.modes, port=9464) as obs:
        ...  # obs.observer, obs.server (None without a port)

Everything started here is stopped on exit, in reverse order; actions in effect stay (see
:meth:`Observer.stop`), pending approvals are cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alina.monitoring.observer import Observer
from alina.monitoring.server import MetricsServer, RunTotalsCollector

__all__ = ["Observability", "observability", "paper_refresh"]

log = logging.getLogger(__name__)


@dataclass
class Observability:
    """What :func:`observability` started."""

    observer: Observer
    server: MetricsServer | None


def paper_refresh(
    desk: Callable[[], Awaitable[Any]] | None, *, every_s: float = 30.0, timeout_s: float = 5.0
) -> Callable[[], Awaitable[None]]:
    """A ``refresh`` that exports the paper desk's equity, PnL and drawdown before an evaluation,
    at most every ``every_s`` seconds and for at most ``timeout_s`` (a live price feed may be
    slow; the observer then uses the last figures). ``desk``: the application's desk opener
    (:attr:`alina.skills.bindings.SkillBindings.desk`, ``Alina.desk``); None: nothing to export."""
    last = [-math.inf]

    async def refresh() -> None:
        if desk is None or time.monotonic() - last[0] < every_s:
            return
        last[0] = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):  # (unlike 3.11's wait_for, never eats a cancel)
                await _export(desk)
        except TimeoutError:
            log.warning("paper figures not refreshed within %gs", timeout_s)

    return refresh


async def _export(desk: Callable[[], Awaitable[Any]]) -> None:
    try:
        opened = await desk()
    except Exception as exc:  # the desk's own errors are its business; the figures wait
        log.warning("paper figures not exported: the desk did not open (%s)", type(exc).__name__)
        return
    await opened.export_figures()


@asynccontextmanager
async def observability(
    cfg: Any,
    *,
    modes: Any = None,
    port: int | None = None,
    host: str | None = None,
    governors: Callable[[], Sequence[Any]] | None = None,
    refresh: Callable[[], Awaitable[None]] | None = None,
    observer: Observer | None = None,
) -> AsyncIterator[Observability]:
    """Start the observer (when ``cfg.alerts.enabled``) and, with ``port`` (0: a free one), the
    metrics server on ``host`` (default ``cfg.monitoring.host``) with the run totals of
    Postgres. ``modes``: the process's :class:`~alina.runtime.modes.SystemMode` (safe mode and
    halt act on it; /healthz reports it); ``governors``: what lower_concurrency caps (default:
    every governor of the process); ``refresh``: awaited before each evaluation (see
    :func:`paper_refresh`); ``observer``: one already built (tests inject clocks and figures)."""
    from alina.models._governor import process_governors

    async with AsyncExitStack() as stack:
        obs = observer or Observer(
            cfg.alerts,
            mode=modes,
            dsn=cfg.postgres.dsn(),
            governors=governors or process_governors,
            refresh=refresh,
        )
        if cfg.alerts.enabled:
            obs.start()
        stack.push_async_callback(obs.stop)
        server = None
        if port is not None:
            totals = RunTotalsCollector(cfg.postgres.dsn(), cfg.monitoring.run_totals_cache_s)
            kwargs: dict[str, Any] = {"mode": lambda: modes.current} if modes is not None else {}
            server = MetricsServer(
                host or cfg.monitoring.host,
                port,
                run_totals=totals,
                on_alerts=obs.handle_alertmanager,  # Alertmanager drives the same actions
                **kwargs,
            )
            await stack.enter_async_context(server)
        yield Observability(obs, server)
