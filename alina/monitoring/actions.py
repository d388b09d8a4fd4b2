"""What the observer may do about an alert, and how each thing is undone.

A bounded table (``alerts.actions`` in config.yaml), nothing else:

* ``lower_concurrency``: every governor's cap goes down to ``limit``; undo restores the cap it
  had, unless someone changed it meanwhile (then it is left alone).
* ``fallback_model``: the configured agents' calls try their fallback model first
  (:func:`alina.models.prefer_fallback`); undo moves them back.
* ``safe_mode``: ``SystemMode.escalate("safe")``; undo sets normal only when the shared mode is
  still the one this action set (same mode, same actor, same time).
* ``halt``: ``SystemMode.escalate("halt")``; never undone automatically (an operator resumes).

Each action has a rate limit (``min_interval_s`` between two firings: no flapping) and may need
an operator (``approve: true``): it is then recorded as pending until :meth:`Actions.approve`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from alina.config import ActionConfig
from alina.models._governor import _GOVERNORS, Governor
from alina.models._resilient import clear_fallback_preference, prefer_fallback
from alina.monitoring.metrics import ALERT_ACTIONS
from alina.runtime.modes import SystemMode

__all__ = ["ActionRecord", "Actions", "Status"]

log = logging.getLogger(__name__)

Status = Literal["pending", "applied", "undone", "cancelled", "rate_limited", "failed", "unavailable"]


@dataclass
class ActionRecord:
    """One firing of an action for a rule, and what became of it."""

    id: int
    action: str
    rule: str
    reason: str
    status: Status
    created_at: float
    applied_at: float | None = None
    recovered: bool | None = None
    """Whether the rule's figure got back past its clear threshold within ``verify_cycles``
    (None: not checked yet, or no figure to check, e.g. an Alertmanager alert)."""
    detail: str = ""
    undo: dict[str, Any] = field(default_factory=dict)
    db_id: int | None = None
    """Its row in ``alert_actions`` (None: not stored, e.g. no Postgres)."""
    """What undo needs (the limits it replaced, the mode state it set)."""


class Actions:
    """Takes, defers (approve), rate-limits and undoes the configured actions."""

    def __init__(
        self,
        config: dict[str, ActionConfig],
        *,
        mode: SystemMode | None = None,
        governors: Callable[[], Sequence[Governor]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``governors`` gives the governors lower_concurrency acts on (default: every shared
        governor of the process); ``mode`` is needed by safe_mode and halt (without it they are
        recorded as unavailable)."""
        self.config = config
        self.mode = mode
        self._governors = governors or (lambda: list(_GOVERNORS.values()))
        self._clock = clock
        self._ids = itertools.count(1)
        self._last_fired: dict[str, float] = {}
        self.records: dict[int, ActionRecord] = {}
        for name in config:  # the series exist from the start: dashboards show 0, not "no data"
            for result in ("applied", "pending", "undone"):
                ALERT_ACTIONS.labels(action=name, result=result).inc(0)

    def _count(self, action: str, result: str) -> None:
        ALERT_ACTIONS.labels(action=action, result=result).inc()

    async def fire(self, action: str, rule: str, reason: str) -> ActionRecord:
        """Take ``action`` for ``rule`` (or record it as pending when it needs approval), unless
        the same action fired less than ``min_interval_s`` ago (status rate_limited)."""
        cfg = self.config[action]
        now = self._clock()
        rec = ActionRecord(next(self._ids), action, rule, reason, "pending", now)
        self.records[rec.id] = rec
        last = self._last_fired.get(action)
        if last is not None and now - last < cfg.min_interval_s:
            rec.status = "rate_limited"
            rec.detail = f"fired {now - last:.0f}s ago (min {cfg.min_interval_s:g}s)"
            log.info("alert %s: %s not taken: %s", rule, action, rec.detail)
            self._count(action, "rate_limited")
            return rec
        self._last_fired[action] = now
        if cfg.approve:
            log.warning("alert %s: %s waits for approval (action %d): %s", rule, action, rec.id, reason)
            self._count(action, "pending")
            return rec
        await self._apply(rec)
        return rec

    async def approve(self, action_id: int) -> ActionRecord:
        """Take a pending action now (KeyError for an unknown id; ValueError if it is not pending)."""
        rec = self.records[action_id]
        if rec.status != "pending":
            raise ValueError(f"action {action_id} is {rec.status}, not pending")
        self._count(rec.action, "approved")
        await self._apply(rec)
        return rec

    def reject(self, action_id: int, why: str) -> ActionRecord:
        """Drop a pending action (an operator said no); KeyError/ValueError as :meth:`approve`."""
        rec = self.records[action_id]
        if rec.status != "pending":
            raise ValueError(f"action {action_id} is {rec.status}, not pending")
        rec.status, rec.detail = "cancelled", why
        self._count(rec.action, "rejected")
        log.warning("alert %s: %s rejected (%s)", rec.rule, rec.action, why)
        return rec

    def pending(self) -> list[ActionRecord]:
        """Actions waiting for an operator, oldest first."""
        return [r for r in self.records.values() if r.status == "pending"]

    async def undo(self, rec: ActionRecord, why: str) -> None:
        """Undo what ``rec`` did (a pending action is cancelled instead); idempotent."""
        if rec.status == "pending":
            rec.status, rec.detail = "cancelled", why
            self._count(rec.action, "cancelled")
            return
        if rec.status != "applied":
            return
        kept = await getattr(self, f"_undo_{rec.action}")(rec, why)
        rec.status = "undone"
        self._count(rec.action, "kept" if kept else "undone")
        note = " - state left as someone else set it" if kept else ""
        log.info("alert %s: %s undone (%s)%s", rec.rule, rec.action, why, note)

    async def _apply(self, rec: ActionRecord) -> None:
        try:
            ok = await getattr(self, f"_do_{rec.action}")(rec)
        except Exception as exc:  # an action that fails must not stop the observer
            rec.status, rec.detail = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("alert %s: %s failed", rec.rule, rec.action)
            self._count(rec.action, "failed")
            return
        if not ok:
            rec.status = "unavailable"
            self._count(rec.action, "unavailable")
            log.warning("alert %s: %s unavailable: %s", rec.rule, rec.action, rec.detail)
            return
        rec.status, rec.applied_at = "applied", self._clock()
        self._count(rec.action, "applied")
        log.warning("alert %s: %s taken (%s): %s", rec.rule, rec.action, rec.detail, rec.reason)

    # -- the actions: each returns whether it could act; each undo whether it left things as they were
    async def _do_lower_concurrency(self, rec: ActionRecord) -> bool:
        limit = self.config[rec.action].limit
        changed: list[tuple[Governor, int]] = []
        for gov in self._governors():
            if gov.limit > limit:
                changed.append((gov, gov.limit))
                gov.set_limit(limit)
        rec.undo["governors"] = changed
        rec.detail = f"{len(changed)} governor(s) capped at {limit}"
        return True

    async def _undo_lower_concurrency(self, rec: ActionRecord, why: str) -> bool:
        limit, kept = self.config[rec.action].limit, False
        for gov, before in rec.undo.get("governors", []):
            if gov.limit == limit:
                gov.set_limit(before)
            else:  # someone set another cap meanwhile: theirs wins
                kept = True
        return kept

    async def _do_fallback_model(self, rec: ActionRecord) -> bool:
        agents = self.config[rec.action].agents
        for agent in agents:
            prefer_fallback(agent, f"alert {rec.rule}: {rec.reason}")
        rec.detail = f"fallback model first for {', '.join(agents)}"
        return True

    async def _undo_fallback_model(self, rec: ActionRecord, why: str) -> bool:
        for agent in self.config[rec.action].agents:
            clear_fallback_preference(agent)
        return False

    async def _escalate(self, rec: ActionRecord, target: str) -> bool:
        if self.mode is None:
            rec.detail = "no system mode in this process"
            return False
        actor = f"observer:{rec.rule}"
        changed = await self.mode.escalate(target, f"alert {rec.rule}: {rec.reason}", actor=actor)
        state = self.mode.shared
        rec.undo["set"] = (state.mode, state.actor, state.since) if changed else None
        rec.detail = f"mode {state.mode}" + ("" if changed else " (was already)")
        return True

    async def _do_safe_mode(self, rec: ActionRecord) -> bool:
        return await self._escalate(rec, "safe")

    async def _undo_safe_mode(self, rec: ActionRecord, why: str) -> bool:
        mine = rec.undo.get("set")
        if mine is None or self.mode is None:
            return True
        await self.mode.refresh()
        shared = self.mode.shared
        if (shared.mode, shared.actor, shared.since) != mine:  # an operator (or another alert) moved it
            return True
        await self.mode.set(
            "normal", f"alert {rec.rule} cleared: {why}", actor=f"observer:{rec.rule}", automatic=True
        )
        return False

    async def _do_halt(self, rec: ActionRecord) -> bool:
        return await self._escalate(rec, "halt")

    async def _undo_halt(self, rec: ActionRecord, why: str) -> bool:
        return True  # halt ends only by an operator (`alina mode resume`)
