"""The metrics server: ``GET /metrics``, ``GET /healthz`` and ``POST /alerts`` on aiohttp.

* ``GET /metrics`` — :data:`alina.monitoring.metrics.REGISTRY` in the Prometheus text format.
* ``GET /healthz`` — JSON ``{"ok": true, "mode": "<normal|degraded|safe|halt|unknown>", "uptime_s": ...}``.
* ``POST /alerts`` — an Alertmanager webhook body (JSON object) handed to ``on_alerts``; 400 when
  the body is not a JSON object, 503 when no handler is set, 500 when the handler raised.

Binds to 127.0.0.1 by default (``monitoring.host``): metrics name agents, models and tools, and
``/alerts`` can trigger actions, so exposing it beyond the machine is the operator's choice.

Short ``alina run`` processes end before a scrape sees their counters. Their totals are not lost:
every run writes its totals to the ``runs`` table, and :class:`RunTotalsCollector` (registered by
the long-running process that serves ``/metrics``) reads the aggregates on scrape, cached for
``monitoring.run_totals_cache_s``, as ``alina_store_*`` series.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from alina.monitoring import metrics

__all__ = ["MetricsServer", "RunTotalsCollector", "current_mode"]

logger = logging.getLogger(__name__)

AlertHandler = Callable[[dict[str, Any]], Awaitable[Any]]

_RUN_TOTALS_SQL = """
SELECT status, count(*), coalesce(sum(model_calls), 0), coalesce(sum(tool_calls), 0),
       coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
FROM runs GROUP BY status
"""


def current_mode() -> str:
    """The mode this process exports on ``alina_mode`` (the label whose value is 1), or "unknown"."""
    for family in metrics.REGISTRY.collect():
        if family.name == "alina_mode":
            for sample in family.samples:
                if sample.value == 1.0:
                    return str(sample.labels.get("mode", "unknown"))
    return "unknown"


class RunTotalsCollector(Collector):
    """Aggregate totals of all runs in Postgres, read on scrape and cached ``ttl_s`` seconds.

    Exports ``alina_store_runs{status}`` (a gauge: a running run becomes completed later),
    ``alina_store_model_calls_total``, ``alina_store_tool_calls_total``,
    ``alina_store_tokens_total{kind=prompt|completion}`` (counters over finished runs: a run's
    totals are written when it ends) and ``alina_store_up`` (1 when the last read worked). A failed
    read never fails the scrape: the other series are still served and ``alina_store_up`` is 0.
    """

    def __init__(self, dsn: str, ttl_s: float = 15.0, connect_timeout_s: float = 5.0) -> None:
        """Read from the Postgres at ``dsn``; reuse a read for ``ttl_s`` seconds."""
        self._dsn = dsn
        self._ttl = ttl_s
        self._timeout = connect_timeout_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[tuple[Any, ...]] | None] = (-float("inf"), None)

    def _rows(self) -> list[tuple[Any, ...]] | None:
        with self._lock:  # one read at a time; concurrent scrapes share it
            at, rows = self._cached
            if time.monotonic() - at < self._ttl:
                return rows
            try:
                import psycopg

                with psycopg.connect(self._dsn, connect_timeout=max(1, int(self._timeout))) as conn:
                    rows = list(conn.execute(_RUN_TOTALS_SQL).fetchall())
            except Exception as exc:  # any store failure means "no totals now"
                logger.warning("run totals: cannot read Postgres (%s)", type(exc).__name__)
                rows = None
            self._cached = (time.monotonic(), rows)
            return rows

    def collect(self) -> Iterator[Any]:
        """Yield the ``alina_store_*`` families (see the class docstring)."""
        rows = self._rows()
        yield GaugeMetricFamily(
            "alina_store_up", "1 when the run totals were read from Postgres.", rows is not None
        )
        if rows is not None:
            yield from self._families(rows)

    @staticmethod
    def _families(rows: list[tuple[Any, ...]]) -> list[Any]:
        """The families for ``rows`` of (status, runs, model calls, tool calls, prompt, completion)."""
        runs = GaugeMetricFamily("alina_store_runs", "Runs in Postgres by status.", labels=["status"])
        calls = CounterMetricFamily("alina_store_model_calls", "Model calls of finished runs (Postgres).")
        tools = CounterMetricFamily("alina_store_tool_calls", "Tool calls of finished runs (Postgres).")
        tokens = CounterMetricFamily(
            "alina_store_tokens",
            "Tokens of finished runs (Postgres), kind=prompt|completion.",
            labels=["kind"],
        )
        done = [r for r in rows if r[0] != "running"]
        for status, n, *_ in rows:
            runs.add_metric([metrics.safe_label(status)], float(n))
        calls.add_metric([], float(sum(r[2] for r in done)))
        tools.add_metric([], float(sum(r[3] for r in done)))
        tokens.add_metric(["prompt"], float(sum(r[4] for r in done)))
        tokens.add_metric(["completion"], float(sum(r[5] for r in done)))
        return [runs, calls, tools, tokens]


class MetricsServer:
    """A small aiohttp server for scrapes, health checks and Alertmanager webhooks.

    ``await start()`` binds (``port=0`` picks a free port, see :attr:`port`); ``await stop()``
    closes it and unregisters ``run_totals``. Scrapes render in a worker thread, so a slow
    Postgres read for the run totals never blocks the event loop that runs the agents.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        on_alerts: AlertHandler | None = None,
        mode: Callable[[], str] = current_mode,
        run_totals: RunTotalsCollector | None = None,
    ) -> None:
        """Serve on ``host:port``; POST /alerts goes to ``on_alerts``; /healthz reports ``mode()``."""
        self.host = host
        self.port = port
        self.on_alerts = on_alerts
        self._mode = mode
        self._run_totals = run_totals
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_post("/alerts", self._alerts)
        self.app = app

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind and serve; registers ``run_totals`` on the REGISTRY."""
        if self._run_totals is not None:
            metrics.REGISTRY.register(self._run_totals)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server  # the bound socket tells the real port when port=0
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._started = time.monotonic()

    async def stop(self) -> None:
        """Stop serving and unregister ``run_totals`` (safe to call twice)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._run_totals is not None:
            try:
                metrics.REGISTRY.unregister(self._run_totals)
            except KeyError:
                pass

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await asyncio.to_thread(metrics.render_latest)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"ok": True, "mode": self._mode(), "uptime_s": round(time.monotonic() - self._started, 3)}
        )

    async def _alerts(self, request: web.Request) -> web.Response:
        if self.on_alerts is None:
            return web.json_response({"error": "no alert handler in this process"}, status=503)
        try:
            payload = json.loads(await request.text())
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(payload, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        try:
            await self.on_alerts(payload)
        except Exception:  # the handler's failure must not kill the server; Alertmanager retries
            logger.exception("alert handler failed")
            return web.json_response({"error": "alert handler failed"}, status=500)
        return web.json_response({"ok": True})
