"""The observer: alert rules evaluated on live figures of this process, acted on and undone.

Every ``alerts.interval_s`` the observer reads the figures (:class:`ProcessFigures`: model error
rate, model p95 latency, timeouts per minute, queue wait p95, tokens and estimated cost per hour
over the trailing ``alerts.window_s``; RSS, CPU and the paper drawdown now; the mean evaluation
score) and checks each rule:

* a rule **fires** once ``figure op threshold`` has held for ``for_s`` (a figure back on the good
  side before that resets the wait);
* it **clears** only once the figure is past ``clear`` (hysteresis: between ``clear`` and
  ``threshold`` it keeps firing);
* a figure with no value (no model call in the window for a p95, no evaluation for the score)
  changes nothing: a waiting rule starts over, a firing one keeps firing.

A firing alert is stored in ``alerts`` (kind = rule name, source ``observer``), logged, shown
by ``alina_alerts_firing{rule}``, and its action is taken (:mod:`alina.monitoring.actions`) with
the reason; the observer then checks whether the figure recovered within ``verify_cycles``
evaluations, and undoes the action when the alert clears (the row gets ``resolved_at`` and a
``resolution``). :meth:`Observer.handle_alertmanager` drives the same rules from a Prometheus
Alertmanager webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from alina.config import AlertRule, AlertsConfig
from alina.models._governor import Governor
from alina.monitoring import action_store, metrics
from alina.monitoring.actions import ActionRecord, Actions
from alina.runtime.modes import SystemMode

__all__ = ["FigureSource", "Observer", "ProcessFigures", "RuleState", "histogram_quantile"]

log = logging.getLogger(__name__)

_FAILED = ("timeout", "unreachable", "malformed", "overflow", "error")
_ANSWERED = ("ok", "repaired", "fallback")


class FigureSource(Protocol):
    """Where the observer reads its figures: ``{figure: value or None (no data)}``."""

    def read(self) -> dict[str, float | None]: ...


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile (0..1) of cumulative ``(upper_bound, count)`` buckets, interpolated
    within a bucket as Prometheus does; None without observations. A quantile in the +Inf bucket
    is the largest finite bound."""
    bs = sorted(buckets)
    if not bs or bs[-1][1] <= 0:
        return None
    rank = q * bs[-1][1]
    prev_le, prev_n = 0.0, 0.0
    for le, n in bs:
        if n >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_n) / (n - prev_n) if n > prev_n else 1.0)
        prev_le, prev_n = le, n
    return prev_le


def _snapshot() -> dict[str, Any]:
    """The counters the figures are differences of, summed over labels."""
    calls: dict[str, float] = {}
    lat: dict[float, float] = {}
    wait: dict[float, float] = {}
    snap: dict[str, Any] = {"calls": calls, "lat": lat, "wait": wait}
    snap.update(tokens=0.0, cost=0.0, ev_sum=0.0, ev_n=0.0, drawdown=None)
    for fam in metrics.REGISTRY.collect():
        for s in fam.samples:
            if s.name == "alina_model_calls_total":
                calls[s.labels["outcome"]] = calls.get(s.labels["outcome"], 0.0) + s.value
            elif s.name == "alina_model_call_seconds_bucket":
                le = float(s.labels["le"])
                lat[le] = lat.get(le, 0.0) + s.value
            elif s.name == "alina_model_queue_wait_seconds_bucket":
                le = float(s.labels["le"])
                wait[le] = wait.get(le, 0.0) + s.value
            elif s.name == "alina_tokens_total":
                snap["tokens"] += s.value
            elif s.name == "alina_cost_estimated_total":
                snap["cost"] += s.value
            elif s.name == "alina_paper_drawdown_ratio":
                snap["drawdown"] = max(s.value, snap["drawdown"] or 0.0)
            elif s.name == "alina_evaluation_score_sum":
                snap["ev_sum"] += s.value
            elif s.name == "alina_evaluation_score_count":
                snap["ev_n"] += s.value
    return snap


class ProcessFigures:
    """The figures of this process, from :data:`~alina.monitoring.metrics.REGISTRY` (differences
    over the trailing ``window_s``, timed by ``clock``) and psutil (RSS, CPU)."""

    def __init__(self, window_s: float = 300.0, *, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, dict[str, Any]]] = deque()
        self._proc: Any = None
        with contextlib.suppress(ImportError):
            import psutil

            self._proc = psutil.Process()
            self._proc.cpu_percent(None)  # the first reading is meaningless; prime it

    def read(self) -> dict[str, float | None]:
        """Every figure now. Rates are over the window (counted from the first read while the
        process is younger than the window): with no model call in it the error rate and the
        timeouts are 0 and the p95s have no value."""
        now, snap = self._clock(), _snapshot()
        self._samples.append((now, snap))
        # keep one sample at or before the window's start: it is the baseline
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()
        base = self._samples[0][1]
        per_min = self.window_s / 60.0

        def d(key: str, sub: str | float | None = None) -> float:
            if sub is None:
                return float(snap[key]) - float(base[key])
            return snap[key].get(sub, 0.0) - base[key].get(sub, 0.0)

        failed = sum(d("calls", o) for o in _FAILED)
        attempts = failed + sum(d("calls", o) for o in _ANSWERED)
        ev_n = d("ev_n")
        return {
            "model_error_rate": failed / attempts if attempts > 0 else 0.0,
            "model_p95_s": histogram_quantile(0.95, [(le, d("lat", le)) for le in snap["lat"]]),
            "timeouts_per_min": d("calls", "timeout") / per_min,
            "queue_wait_p95_s": histogram_quantile(0.95, [(le, d("wait", le)) for le in snap["wait"]]),
            "tokens_per_hour": d("tokens") / (self.window_s / 3600.0),
            "cost_per_hour": d("cost") / (self.window_s / 3600.0),
            "rss_mb": self._proc.memory_info().rss / 2**20 if self._proc else None,
            "cpu_pct": self._proc.cpu_percent(None) if self._proc else None,
            "evaluation_score": d("ev_sum") / ev_n if ev_n > 0 else None,
            "paper_drawdown": snap["drawdown"],  # now, not over the window (None: no paper account)
        }


@dataclass
class RuleState:
    """Where one rule stands."""

    rule: AlertRule
    value: float | None = None
    pending_since: float | None = None
    firing: bool = False
    source: str = "observer"
    alert_id: int | None = None
    action: ActionRecord | None = None
    verify_left: int = 0


class Observer:
    """Evaluates the alert rules, stores and counts alerts, takes and undoes their actions."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        figures: FigureSource | None = None,
        mode: SystemMode | None = None,
        dsn: str | None = None,
        governors: Callable[[], Sequence[Governor]] | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 3.0,
        refresh: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``figures`` default: :class:`ProcessFigures` on ``clock``; ``dsn``: where alerts and
        actions are stored (None: logged and counted only); ``mode``/``governors``: what actions
        act on; ``refresh()``: awaited before each evaluation (e.g. the paper desk's gauges)."""
        self.config = config
        self.figures = figures or ProcessFigures(config.window_s, clock=clock)
        self.actions = Actions(config.actions, mode=mode, governors=governors, clock=clock)
        self.dsn = dsn
        self._clock = clock
        self._timeout_s = timeout_s
        self.states = {r.name: RuleState(r) for r in config.rules}
        self._task: asyncio.Task[None] | None = None
        self._refresh = refresh
        self.owner = action_store.owner()
        for name in self.states:
            metrics.ALERTS_FIRING.labels(rule=metrics.safe_label(name)).set(0)

    # -- the loop --------------------------------------------------------------------------------
    def start(self) -> None:
        """Evaluate every ``interval_s`` in a background task of the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="alina-observer")

    async def stop(self) -> None:
        """Stop the background task (actions in effect stay; nothing is undone). Actions still
        waiting for an operator are cancelled: no process is left to apply them."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        waiting = [r for r in self.actions.pending() if r.db_id is not None]
        for rec in waiting:
            rec.status, rec.detail = "cancelled", "the observer stopped"
        if waiting and self.dsn is not None:
            await action_store.cancel_owner(self.dsn, self.owner, "the observer stopped", self._timeout_s)

    async def _loop(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception:  # one bad cycle must not end the observer
                log.exception("observer: evaluation failed")
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # stop() cancelled us while an await inside the cycle swallowed it (Python 3.11's
                # wait_for does when the awaited call finishes at the same moment): stop anyway
                raise asyncio.CancelledError
            await asyncio.sleep(self.config.interval_s)

    async def evaluate(self) -> list[str]:
        """One evaluation of every rule; returns what changed (``fired:<rule>``, ``cleared:<rule>``,
        ``approved:<rule>``, ``rejected:<rule>`` for operators' decisions taken up now)."""
        changed = await self._take_decisions()
        if self._refresh is not None:
            try:
                await self._refresh()
            except Exception:
                log.exception("observer: refreshing the figures failed")
        values = self.figures.read()
        now = self._clock()
        for st in self.states.values():
            rule, v = st.rule, values.get(st.rule.figure)
            st.value = v
            if st.firing and st.source != "observer":
                continue  # an Alertmanager alert ends when Alertmanager resolves it
            if v is None:
                st.pending_since = None if not st.firing else st.pending_since
                continue
            bad = v > rule.threshold if rule.op == ">" else v < rule.threshold
            if not st.firing:
                if not bad:
                    st.pending_since = None
                    continue
                st.pending_since = now if st.pending_since is None else st.pending_since
                if now - st.pending_since >= rule.for_s:
                    msg = (
                        f"{rule.figure} = {v:.4g} ({rule.op} {rule.threshold:g} for "
                        f"{now - st.pending_since:.0f}s)"
                    )
                    await self._fire(st, msg, rule.severity)
                    changed.append(f"fired:{rule.name}")
                continue
            good = v < rule.clear if rule.op == ">" else v > rule.clear
            self._verify(st, good)
            if good:
                await self._clear(st, f"{rule.figure} = {v:.4g}, past the clear threshold {rule.clear:g}")
                changed.append(f"cleared:{rule.name}")
        return changed

    def _verify(self, st: RuleState, good: bool) -> None:
        rec = st.action
        if rec is None or rec.status != "applied" or rec.recovered is not None:
            return
        if good:
            rec.recovered = True
            metrics.ALERT_ACTIONS.labels(action=rec.action, result="recovered").inc()
            return
        st.verify_left -= 1
        if st.verify_left <= 0:
            rec.recovered = False
            metrics.ALERT_ACTIONS.labels(action=rec.action, result="not_recovered").inc()
            log.warning(
                "alert %s: %s did not bring %s back within %d evaluations (now %s)",
                st.rule.name,
                rec.action,
                st.rule.figure,
                self.config.verify_cycles,
                st.value,
            )

    # -- firing and clearing -----------------------------------------------------------------------
    async def _fire(self, st: RuleState, message: str, severity: str) -> None:
        rule = st.rule
        st.firing, st.pending_since = True, None
        metrics.ALERTS_FIRING.labels(rule=metrics.safe_label(rule.name)).set(1)
        log.warning("alert %s firing (%s): %s", rule.name, severity, message)
        st.alert_id = await self._store(rule.name, severity, message, st.source)
        if rule.action is not None:
            st.action = await self.actions.fire(rule.action, rule.name, message)
            st.verify_left = self.config.verify_cycles
            if self.dsn is not None:
                st.action.db_id = await action_store.insert(
                    self.dsn, st.action, st.alert_id, self.owner, self._timeout_s
                )

    async def _clear(self, st: RuleState, resolution: str) -> None:
        rule = st.rule
        st.firing, st.pending_since = False, None
        metrics.ALERTS_FIRING.labels(rule=metrics.safe_label(rule.name)).set(0)
        log.info("alert %s cleared: %s", rule.name, resolution)
        if st.alert_id is not None:
            await self._resolve(st.alert_id, resolution)
        if st.action is not None:
            await self.actions.undo(st.action, resolution)
            await self._save(st.action)
        st.alert_id, st.action, st.source = None, None, "observer"

    async def approve(self, action_id: int) -> ActionRecord:
        """An operator approves a pending action: it is taken now (and verified, then undone when
        its alert clears). KeyError: unknown id; ValueError: not pending (e.g. cancelled)."""
        rec = await self.actions.approve(action_id)
        st = self.states.get(rec.rule)
        if st is not None and st.action is rec:
            st.verify_left = self.config.verify_cycles
        await self._save(rec)
        return rec

    async def _save(self, rec: ActionRecord) -> None:
        if self.dsn is not None:
            await action_store.update(self.dsn, rec, self._timeout_s)

    async def _take_decisions(self) -> list[str]:
        """Apply the actions operators approved (``alina alerts approve``), drop the rejected."""
        waiting = {r.db_id: r for r in self.actions.pending() if r.db_id is not None}
        if self.dsn is None or not waiting:
            return []
        changed = []
        decided = await action_store.decisions(self.dsn, list(waiting), self._timeout_s)
        for db_id, (status, by) in decided.items():
            rec = waiting[db_id]
            if status == "approved":
                await self.approve(rec.id)
                log.warning("alert %s: %s approved by %s", rec.rule, rec.action, by or "an operator")
            else:
                self.actions.reject(rec.id, f"rejected by {by or 'an operator'}")
                await self._save(rec)
            changed.append(f"{status}:{rec.rule}")
        return changed

    # -- Alertmanager ------------------------------------------------------------------------------
    async def handle_alertmanager(self, payload: dict[str, Any]) -> dict[str, list[str]]:
        """Apply a Prometheus Alertmanager webhook (version 4): a ``firing`` alert whose
        ``labels.alertname`` is a rule's name fires that rule (stored with source
        ``alertmanager``, its action taken), a ``resolved`` one clears it (action undone). Returns
        the names ``fired``, ``resolved`` and ``ignored`` (no such rule, or no change). ValueError
        when the payload has no ``alerts`` list."""
        alerts = payload.get("alerts") if isinstance(payload, dict) else None
        if not isinstance(alerts, list):
            raise ValueError("not an Alertmanager webhook payload: no alerts list")
        out: dict[str, list[str]] = {"fired": [], "resolved": [], "ignored": []}
        for alert in alerts:
            alert = alert if isinstance(alert, dict) else {}
            labels = alert.get("labels") or {}
            name = str(labels.get("alertname", ""))
            st = self.states.get(name)
            status = alert.get("status")
            if st is None or status not in ("firing", "resolved") or (status == "firing") == st.firing:
                out["ignored"].append(name)
                continue
            notes = alert.get("annotations") or {}
            text = str(notes.get("summary") or notes.get("description") or name)[:500]
            if status == "firing":
                sev = labels.get("severity")
                st.source = "alertmanager"
                await self._fire(
                    st,
                    f"alertmanager: {text}",
                    sev if sev in ("info", "warning", "critical") else st.rule.severity,
                )
                out["fired"].append(name)
            else:
                await self._clear(st, f"alertmanager resolved: {text}")
                out["resolved"].append(name)
        return out

    # -- the alerts table --------------------------------------------------------------------------
    async def _store(self, kind: str, severity: str, message: str, source: str) -> int | None:
        if self.dsn is None:
            return None
        try:
            async with await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self._timeout_s))
            ) as conn:
                cur = await conn.execute(
                    "INSERT INTO alerts (kind, severity, message, source) VALUES (%s, %s, %s, %s) "
                    "RETURNING id",
                    (kind, severity, message, source),
                )
                row = await cur.fetchone()
                return int(row[0]) if row else None
        except (psycopg.Error, OSError) as exc:  # the alert still acts; only its row is missing
            log.warning("observer: alert %s not stored (%s)", kind, type(exc).__name__)
            return None

    async def _resolve(self, alert_id: int, resolution: str) -> None:
        if self.dsn is None:
            return
        try:
            async with await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self._timeout_s))
            ) as conn:
                await conn.execute(
                    "UPDATE alerts SET resolved_at = now(), resolution = %s "
                    "WHERE id = %s AND resolved_at IS NULL",
                    (resolution[:500], alert_id),
                )
        except (psycopg.Error, OSError) as exc:
            log.warning("observer: alert %d not resolved in Postgres (%s)", alert_id, type(exc).__name__)
