"""The monitor's one-line view of an application: its mode and its open alerts.

:class:`MonitorStatus` reads the mode without I/O and counts the open alerts (and lists them with
the actions waiting for an operator) in Postgres, with a short timeout and a cache, failing open.
:class:`alina.Alina` owns one for its mode and Postgres and hands it to the ``system_health``
tool (:mod:`alina.skills.bindings`); :func:`monitor_status_line` and
:func:`monitor_alerts_detail` are what the tool says outside any application (no stores).
Re-exported from :mod:`alina.runtime.status`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from alina._errors import error_line

__all__ = ["MonitorStatus", "monitor_alerts_detail", "monitor_status_line"]


MONITOR_CACHE_S = 15.0


class MonitorStatus:
    """The monitor's one-line view (mode and open alerts) of one application: its mode (read
    without I/O) and the Postgres holding the alerts; the alert count is cached."""

    def __init__(self, mode: Callable[[], str] | None = None, dsn: str | None = None) -> None:
        self.mode, self.dsn = mode, dsn
        self._cache: tuple[float, str] | None = None
        self._detail: tuple[float, str] | None = None

    def line(self, timeout_s: float = 1.0) -> str:
        """``status: mode M, N open alert(s)``; a part that cannot be read says ``unavailable``
        (with the reason). The alert count is cached for ``MONITOR_CACHE_S`` seconds and read
        with a ``timeout_s`` timeout, so the tool stays fast."""
        mode_fn, dsn = self.mode, self.dsn
        if mode_fn is None and dsn is None:
            return "status: mode and alerts unavailable (no stores configured in this process)"
        try:
            mode = f"mode {mode_fn()}" if mode_fn is not None else "mode unavailable"
        except Exception as exc:  # fails open
            mode = f"mode unavailable ({error_line(exc)})"
        cached = self._cache
        now = time.monotonic()
        if cached is not None and now - cached[0] < MONITOR_CACHE_S:
            alerts = cached[1]
        else:
            if dsn is None:
                alerts = "open alerts unavailable (no Postgres)"
            else:
                try:
                    n = _open_alerts(dsn, timeout_s)
                    alerts = f"{n} open alert{'s' if n != 1 else ''}"
                except Exception as exc:  # fails open
                    alerts = f"open alerts unavailable ({error_line(exc)})"
            self._cache = (now, alerts)
        return f"status: {mode}, {alerts}"

    def detail(self, timeout_s: float = 1.0, limit: int = 3) -> str:
        """``open: <alert> (<severity>, since HH:MM UTC): <message>; ...; action N ... waits for
        an operator`` - the newest ``limit`` open alerts and pending actions, or "" when there are
        none or they cannot be read (:meth:`line` says why). Cached like it."""
        if self.dsn is None:
            return ""
        cached, now = self._detail, time.monotonic()
        if cached is not None and now - cached[0] < MONITOR_CACHE_S:
            return cached[1]
        try:
            text = _open_detail(self.dsn, timeout_s, limit)
        except Exception:  # fails open
            text = ""
        self._detail = (now, text)
        return text


def _open_alerts(dsn: str, timeout_s: float) -> int:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        row = conn.execute("SELECT count(*) FROM alerts WHERE resolved_at IS NULL").fetchone()
        return int(row[0]) if row else 0


def _open_detail(dsn: str, timeout_s: float, limit: int) -> str:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, int(timeout_s))) as conn:
        conn.execute(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        alerts = conn.execute(
            "SELECT kind, severity, message, created_at FROM alerts WHERE resolved_at IS NULL "
            "ORDER BY id DESC LIMIT %s",
            (limit,),
        ).fetchall()
        try:
            waiting = conn.execute(
                "SELECT id, action, rule FROM alert_actions WHERE status = 'pending' ORDER BY id LIMIT %s",
                (limit,),
            ).fetchall()
        except psycopg.errors.UndefinedTable:
            waiting = []
    parts = [f"{k} ({sev}, since {at:%H:%M} UTC): {msg[:80]}" for k, sev, msg, at in alerts]
    parts += [f"action {i} {a} for {r} waits for an operator" for i, a, r in waiting]
    return ("open: " + "; ".join(parts)) if parts else ""


def monitor_alerts_detail(timeout_s: float = 1.0, limit: int = 3) -> str:
    """The alerts detail outside any application: none can be read ("")."""
    return MonitorStatus().detail(timeout_s, limit)


def monitor_status_line(timeout_s: float = 1.0) -> str:
    """The status line outside any application: no stores to read (see :meth:`MonitorStatus.line`)."""
    return MonitorStatus().line(timeout_s)
