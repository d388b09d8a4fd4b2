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

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alina.monitoring.observer import Observer
from alina.monitoring.server import MetricsServer, RunTotalsCollector

__all__ = ["Observability", "observability", "paper_refresh"]


@dataclass
class Observability:
    """What :func:`observability` started."""

    observer: Observer
    server: MetricsServer | None


def paper_refresh(desk: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    """A ``refresh`` that exports the paper desk's equity, PnL and drawdown before each
    evaluation; ``desk()`` returns the process's :class:`~alina.trading.desk.TradingDesk` or None."""

    async def refresh() -> None:
        d = desk()
        if d is not None:
            await d.export_figures()

    return refresh


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
            cfg.alerts, mode=modes, dsn=cfg.postgres.dsn(), governors=governors or process_governors,
            refresh=refresh,
        )  # fmt: skip
        if cfg.alerts.enabled:
            obs.start()
        stack.push_async_callback(obs.stop)
        server = None
        if port is not None:
            totals = RunTotalsCollector(cfg.postgres.dsn(), cfg.monitoring.run_totals_cache_s)
            kwargs: dict[str, Any] = {"mode": lambda: modes.current} if modes is not None else {}
            server = MetricsServer(
                host or cfg.monitoring.host, port, run_totals=totals,
                on_alerts=obs.handle_alertmanager,  # Alertmanager drives the same actions
                **kwargs,
            )  # fmt: skip
            await stack.enter_async_context(server)
        yield Observability(obs, server)
