"""The system mode: one state machine that every process reads and that code, not prompts, obeys.

``normal -> degraded -> safe -> halt``:

* **normal**: everything allowed.
* **degraded**: the system is under strain (an alert fired); everything still allowed.
* **safe**: read and report only. The trading desk refuses orders, skills that declare side
  effects leave every agent's tool grammar and are refused if called anyway, and order tasks
  never reach the trader (the router's rule).
* **halt** (kill switch): safe, plus open orders are cancelled and no scheduled run starts,
  until an operator resumes.

The current mode lives in Redis (``alina:mode:<database>``: one per deployment, named after its
Postgres database, so two deployments sharing a Redis never share a kill switch), so every
process sees one value; Postgres keeps
the history (``mode_transitions``: from, to, who, why) and is the fallback when Redis is away.
Each process also holds a local *floor* that never persists: ``alina run --mode safe`` and "the
run store is unreachable, state cannot be saved" raise the mode of this process only.

Automatic transitions only escalate (a model call that exhausted its retries and fallback moves
the system to safe). An automatic safe mode is left automatically once the health checks have
passed for ``recover_after_s`` without a failure (:meth:`SystemMode.report_health`); a mode an
operator set is left only by an operator (``alina mode resume``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg
import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge

from alina.monitoring.metrics import REGISTRY, safe_label

__all__ = [
    "MODES",
    "Mode",
    "ModeState",
    "SystemMode",
    "Transition",
    "blocks_side_effects",
    "parse_mode",
    "watch_health",
]

logger = logging.getLogger(__name__)

Mode = Literal["normal", "degraded", "safe", "halt"]
MODES: tuple[Mode, ...] = ("normal", "degraded", "safe", "halt")
_LEVEL: dict[str, int] = {m: i for i, m in enumerate(MODES)}
REDIS_KEY = "alina:mode"

MODE = Gauge(
    "alina_mode",
    "The system mode this process obeys: 1 for the current one of normal|degraded|safe|halt.",
    ["mode"],
    registry=REGISTRY,
)
MODE_TRANSITIONS = Counter(
    "alina_mode_transitions_total",
    "Mode transitions made by this process, by target mode and actor.",
    ["to", "actor"],
    registry=REGISTRY,
)


def parse_mode(value: str) -> Mode:
    """``value`` as a mode; ValueError naming the choices otherwise."""
    if value not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)} (got {value!r})")
    return value


def blocks_side_effects(mode: str) -> bool:
    """Whether ``mode`` forbids orders and every other side effect (safe and halt)."""
    return _LEVEL.get(mode, _LEVEL["safe"]) >= _LEVEL["safe"]  # an unknown mode is not trusted


@dataclass(frozen=True)
class ModeState:
    """The shared mode and how it came to be."""

    mode: Mode = "normal"
    reason: str = "default"
    actor: str = "default"
    automatic: bool = False
    since: float = 0.0
    """Unix time of the transition."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> ModeState:
        data = json.loads(raw)
        return cls(
            mode=parse_mode(str(data["mode"])),
            reason=str(data.get("reason", "")),
            actor=str(data.get("actor", "")),
            automatic=bool(data.get("automatic", False)),
            since=float(data.get("since", 0.0)),
        )


@dataclass(frozen=True)
class Transition:
    """One row of the history."""

    from_mode: str
    to_mode: str
    actor: str
    reason: str
    automatic: bool
    run_id: str | None
    created_at: Any


class SystemMode:
    """The mode as this process sees it: the shared state (Redis, Postgres) raised by a local floor.

    Reads are synchronous and cost a dict lookup (:attr:`current`), so the desk and the skills
    can check on every call; :meth:`refresh` re-reads the shared value (the run loop calls it
    before each turn, side-effect skills before each call). Writes go to Postgres (history),
    then Redis (current); a store that is away is logged and skipped, never fatal: the local
    value always changes.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        dsn: str | None = None,
        recover_after_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        timeout_s: float = 1.0,
        key: str = REDIS_KEY,
    ) -> None:
        self.dsn = dsn
        self.key = key
        self.recover_after_s = recover_after_s
        self._clock = clock
        self._timeout_s = timeout_s
        self._redis = (
            aioredis.Redis.from_url(
                redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True
            )
            if redis_url
            else None
        )
        self.shared = ModeState()
        self._floor: dict[str, tuple[Mode, str]] = {}
        self._healthy_since: float | None = None
        self._warned: set[str] = set()
        self._export()

    @classmethod
    def for_config(cls, config: Any, *, redis: bool = True, postgres: bool = True) -> SystemMode:
        """The deployment's shared mode as ``config`` (an AlinaConfig) names it: its Redis and
        Postgres (either left out with ``redis=False``/``postgres=False``, e.g. when known to
        be down), its recovery time, and the Redis key of its database."""
        return cls(
            redis_url=config.redis.url() if redis else None,
            dsn=config.postgres.dsn() if postgres else None,
            recover_after_s=config.resilience.recover_after_s,
            key=f"{REDIS_KEY}:{config.postgres.database}",
        )

    # ------------------------------------------------------------------ reading

    @property
    def state(self) -> ModeState:
        """The effective state: the shared one, or a local floor above it."""
        best = self.shared
        for key, (mode, reason) in self._floor.items():
            if _LEVEL[mode] > _LEVEL[best.mode]:
                best = ModeState(mode, reason, f"local:{key}", True, best.since)
        return best

    @property
    def current(self) -> Mode:
        """The mode this process obeys now (no I/O)."""
        return self.state.mode

    @property
    def blocks_side_effects(self) -> bool:
        """True in safe and halt."""
        return blocks_side_effects(self.current)

    def router_mode(self) -> Literal["normal", "safe"]:
        """What the router needs to know: ``safe`` (no order reaches the trader) or ``normal``."""
        return "safe" if self.blocks_side_effects else "normal"

    async def refresh(self) -> ModeState:
        """Re-read the shared mode (Redis, else the last transition in Postgres); on failure keep
        the last known value. Returns the effective state."""
        raw = await self._redis_call("read", self._redis.get(self.key)) if self._redis else None
        if isinstance(raw, str):
            try:
                self.shared = ModeState.from_json(raw)
            except (ValueError, KeyError, TypeError):
                self._warn_once("corrupt", f"ignoring a corrupt {self.key} value in Redis")
        else:  # Redis away, or it lost the key (restarted without persistence): Postgres knows
            last = await self._last_transition()
            if last is not None:
                self.shared = last
                if raw is None and self._redis is not None:
                    await self._redis_call("write", self._redis.set(self.key, last.to_json()))
        self._export()
        return self.state

    # ------------------------------------------------------------------ writing

    async def set(
        self,
        mode: str,
        reason: str,
        *,
        actor: str = "operator",
        automatic: bool = False,
        run_id: str | None = None,
    ) -> ModeState:
        """Make ``mode`` the shared mode (recorded with who and why); returns the effective state."""
        target = parse_mode(mode)
        reason = (reason or "").strip() or "(no reason given)"
        await self.refresh()
        before = self.shared.mode
        self.shared = ModeState(target, reason[:500], actor, automatic, self._clock())
        self._healthy_since = None
        await self._record(before, self.shared, run_id)
        if self._redis is not None:
            await self._redis_call("write", self._redis.set(self.key, self.shared.to_json()))
        MODE_TRANSITIONS.labels(to=target, actor=safe_label(actor)).inc()
        log = logger.warning if _LEVEL[target] >= _LEVEL["safe"] else logger.info
        log("system mode %s -> %s by %s: %s", before, target, actor, reason)
        self._export()
        return self.state

    async def escalate(self, mode: str, reason: str, *, actor: str, run_id: str | None = None) -> bool:
        """An automatic transition: only ever upwards (a higher mode is kept). Returns whether
        the shared mode changed."""
        target = parse_mode(mode)
        await self.refresh()
        if _LEVEL[target] <= _LEVEL[self.shared.mode]:
            return False
        await self.set(target, reason, actor=actor, automatic=True, run_id=run_id)
        return True

    async def report_health(self, ok: bool, detail: str = "") -> bool:
        """Feed one health-check result. An automatic safe (or degraded) mode goes back to normal
        after the checks have passed for ``recover_after_s`` without a failure; an operator's mode
        and halt never end this way. Returns True when this call recovered the system."""
        await self.refresh()
        s = self.shared
        if s.mode == "normal" or s.mode == "halt" or not s.automatic:
            self._healthy_since = None
            return False
        now = self._clock()
        if not ok:
            self._healthy_since = None
            return False
        if self._healthy_since is None:
            self._healthy_since = now
        if now - self._healthy_since < self.recover_after_s:
            return False
        why = f"health checks passed for {self.recover_after_s:g}s" + (f" ({detail})" if detail else "")
        await self.set("normal", why, actor="recovery", automatic=True)
        return True

    def raise_floor(self, key: str, mode: str, reason: str) -> None:
        """Raise this process's mode to at least ``mode`` until :meth:`clear_floor` (not shared,
        not persisted): e.g. ``alina run --mode safe``, or the run store being unreachable."""
        target = parse_mode(mode)
        if key not in self._floor:
            logger.warning("this process obeys at least %s mode: %s", target, reason)
        self._floor[key] = (target, reason)
        self._export()

    def clear_floor(self, key: str) -> None:
        """Drop a floor set by :meth:`raise_floor` (nothing if it is not set)."""
        if self._floor.pop(key, None) is not None:
            logger.info("local %s floor lifted", key)
        self._export()

    # ------------------------------------------------------------------ history

    async def history(self, limit: int = 20) -> list[Transition]:
        """The latest transitions, newest first (empty when Postgres is not configured)."""
        if self.dsn is None:
            return []
        async with await self._connect(autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT from_mode, to_mode, actor, reason, automatic, run_id, created_at "
                "FROM mode_transitions ORDER BY id DESC LIMIT %s",
                (limit,),
            )
            return [Transition(*row) for row in await cur.fetchall()]

    async def open_alerts(self, limit: int = 20) -> list[dict[str, Any]]:
        """Alerts not resolved yet, newest first (empty when Postgres is not configured)."""
        if self.dsn is None:
            return []
        async with await self._connect(autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT kind, severity, message, source, run_id, created_at FROM alerts "
                "WHERE resolved_at IS NULL ORDER BY id DESC LIMIT %s",
                (limit,),
            )
            cols = ("kind", "severity", "message", "source", "run_id", "at")
            return [dict(zip(cols, row, strict=True)) for row in await cur.fetchall()]

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    # ------------------------------------------------------------------ internals

    async def _connect(self, *, autocommit: bool = True) -> psycopg.AsyncConnection[Any]:
        """One short-lived connection: transitions and reads are rare, a pool is not worth it."""
        return await psycopg.AsyncConnection.connect(
            str(self.dsn), autocommit=autocommit, connect_timeout=max(1, int(self._timeout_s * 3))
        )

    def _export(self) -> None:
        now = self.current
        for m in MODES:
            MODE.labels(mode=m).set(1.0 if m == now else 0.0)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    async def _redis_call(self, what: str, coro: Any) -> Any:
        try:
            value = await coro
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
            self._warn_once(
                f"redis-{what}",
                f"mode: Redis unavailable ({type(exc).__name__}); using Postgres and the last known mode",
            )
            return _MISSING
        return value

    async def _last_transition(self) -> ModeState | None:
        if self.dsn is None:
            return None
        try:
            async with await self._connect(autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT to_mode, reason, actor, automatic, extract(epoch FROM created_at) "
                    "FROM mode_transitions ORDER BY id DESC LIMIT 1"
                )
                row = await cur.fetchone()
        except (psycopg.Error, OSError) as exc:
            self._warn_once(
                "pg-read", f"mode: Postgres unavailable ({type(exc).__name__}); keeping the last known mode"
            )
            return None
        if row is None:
            return None
        return ModeState(parse_mode(row[0]), row[1], row[2], bool(row[3]), float(row[4]))

    async def _record(self, before: str, after: ModeState, run_id: str | None) -> None:
        """The transition in ``mode_transitions``; entering safe or halt opens an alert, leaving
        them resolves the open mode alerts."""
        if self.dsn is None:
            return
        try:
            async with await self._connect(autocommit=False) as conn:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO mode_transitions (from_mode, to_mode, actor, reason, automatic, run_id) "
                        "VALUES (%s, %s, %s, %s, %s, (SELECT id FROM runs WHERE id = %s))",
                        (before, after.mode, after.actor, after.reason, after.automatic, run_id),
                    )
                    if blocks_side_effects(after.mode) and not blocks_side_effects(before):
                        await conn.execute(
                            "INSERT INTO alerts (kind, severity, message, run_id, source) "
                            "VALUES ('mode', 'critical', %s, (SELECT id FROM runs WHERE id = %s), %s)",
                            (f"system entered {after.mode} mode: {after.reason}", run_id, after.actor),
                        )
                    elif blocks_side_effects(before) and not blocks_side_effects(after.mode):
                        await conn.execute(
                            "UPDATE alerts SET resolved_at = now(), resolution = %s "
                            "WHERE kind = 'mode' AND resolved_at IS NULL",
                            (f"{after.mode} by {after.actor}: {after.reason}",),
                        )
        except (psycopg.Error, OSError) as exc:
            self._warn_once(
                "pg-write",
                f"mode: transition not recorded in Postgres ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})",
            )


async def watch_health(
    modes: SystemMode, healthy: Callable[[], tuple[bool, str]], *, interval_s: float = 10.0
) -> None:
    """Feed ``healthy()`` (run in a thread: checks may block) to :meth:`SystemMode.report_health`
    every ``interval_s`` until cancelled, so a long-running process leaves an automatic safe mode
    once the health checks have passed for ``recover_after_s``. A failing check never stops it."""
    while True:
        try:
            ok, detail = await asyncio.to_thread(healthy)
            if await modes.report_health(ok, detail):
                logger.warning("health restored: back to normal mode")
        except Exception as exc:  # the watcher must outlive a bad check
            logger.warning("health check failed to run: %s", exc)
        await asyncio.sleep(interval_s)


class _Missing:
    """Marker: the store could not be asked (different from "asked, nothing there")."""


_MISSING: Any = _Missing()
