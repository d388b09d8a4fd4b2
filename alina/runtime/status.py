"""What ``alina status`` shows, gathered from the durable stores (Postgres, Redis).

:func:`gather_status` reads, it never writes: no migration, no order, no mode change. Every
section fails open: a store that is down (or a table that is missing) leaves its sections with
``available: false`` and the reason, and the rest is still gathered.

:class:`MonitorStatus` is the monitor's one-line view (mode and open alerts) for the
``system_health`` tool; an application owns one for its mode and Postgres. It lives in
``runtime/_monitor_line.py`` and is re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from alina._errors import error_line
from alina.runtime._monitor_line import (
    MonitorStatus,
    monitor_alerts_detail,
    monitor_status_line,
)

__all__ = [
    "MonitorStatus",
    "gather_status",
    "monitor_alerts_detail",
    "monitor_status_line",
    "paper_summary",
]

GOVERNOR_PREFIX = "alina:governor:"
_EPS = 1e-12


async def _section(fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """``fn()`` marked available, or ``{available: false, error}`` when it raised (fails open)."""
    try:
        return {"available": True, **await fn()}
    except psycopg.errors.UndefinedTable as exc:
        return {"available": False, "error": f"{error_line(exc)} (run `alina db migrate`)"}
    except Exception as exc:  # one section's failure must not hide the others
        return {"available": False, "error": error_line(exc)}


def _down(error: str) -> dict[str, Any]:
    return {"available": False, "error": error}


async def gather_status(
    cfg: Any,
    *,
    window_s: float = 3600.0,
    score_window: int = 20,
    usd_per_1k_tokens: float = 0.0,
    limit: int = 10,
) -> dict[str, Any]:
    """The dashboard's data as one JSON-ready dict: ``stores`` (postgres/redis ok and error),
    ``mode``, ``transitions``, ``alerts``, ``actions`` (the observer's, pending ones first),
    ``model_calls`` (in flight from the governor's Redis
    leases, and the cap), ``usage`` (tokens, calls and estimated cost over the last ``window_s``),
    ``scores`` (per agent and evaluation: mean of the last ``score_window``), ``paper`` (paper
    accounts' equity and PnL from their snapshots) and ``runs`` (in the window, by status).
    Never raises for a store that is down: the sections it feeds say ``available: false``."""
    import redis.asyncio as aioredis

    from alina.memory_store.runs import unavailable_error
    from alina.runtime.modes import SystemMode

    status: dict[str, Any] = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "window_s": window_s,
    }
    dsn = cfg.postgres.dsn()
    conn: psycopg.AsyncConnection[Any] | None = None
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, int(cfg.postgres.connect_timeout_s))
        )
        await conn.execute("SET statement_timeout = '5s'")
        pg: dict[str, Any] = {"ok": True, "error": None}
    except (psycopg.Error, OSError) as exc:
        pg = {"ok": False, "error": str(unavailable_error(dsn, exc))}
    redis = aioredis.Redis.from_url(
        cfg.redis.url(), socket_timeout=1.0, socket_connect_timeout=1.0, decode_responses=True
    )
    try:
        await redis.ping()
        rd: dict[str, Any] = {"ok": True, "error": None}
    except Exception as exc:  # any Redis failure means "down" here
        rd = {"ok": False, "error": f"cannot reach Redis at {cfg.redis.url()} ({error_line(exc)})"}
    status["stores"] = {"postgres": pg, "redis": rd}
    pg_down = _down("Postgres is down (stores.postgres says why)")
    try:
        modes = SystemMode.for_config(cfg, redis=rd["ok"], postgres=pg["ok"])
        status["mode"] = await _mode_section(modes, pg["ok"], rd["ok"])
        if conn is None:
            for key in ("transitions", "alerts", "actions", "usage", "scores", "paper", "runs"):
                status[key] = pg_down
        else:
            c = conn
            status["transitions"] = await _section(lambda: _transitions(c, limit))
            status["alerts"] = await _section(lambda: _alerts(c, limit))
            status["actions"] = await _section(lambda: _actions(c, limit))
            status["usage"] = await _section(lambda: _usage(c, window_s, usd_per_1k_tokens))
            status["scores"] = await _section(lambda: _scores(c, window_s, score_window))
            status["paper"] = await _section(lambda: _paper(c))
            status["runs"] = await _section(lambda: _runs(c, window_s))
        status["model_calls"] = await _model_calls(cfg, redis, rd)
        await modes.close()
    finally:
        await redis.aclose()
        if conn is not None:
            await conn.close()
    return status


async def _mode_section(modes: Any, pg_ok: bool, redis_ok: bool) -> dict[str, Any]:
    if not (pg_ok or redis_ok):
        return _down("neither Redis nor Postgres is reachable")
    s = await modes.refresh()
    since = dt.datetime.fromtimestamp(s.since, dt.UTC).isoformat(timespec="seconds") if s.since else None
    source = "redis" if redis_ok else "postgres (Redis unavailable)"
    return {
        "available": True,
        "mode": s.mode,
        "reason": s.reason,
        "actor": s.actor,
        "automatic": s.automatic,
        "since": since,
        "source": source,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else None


async def _rows(conn: Any, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return list(await cur.fetchall())


async def _transitions(conn: Any, limit: int) -> dict[str, Any]:
    rows = await _rows(
        conn,
        "SELECT from_mode, to_mode, actor, reason, automatic, created_at "
        "FROM mode_transitions ORDER BY id DESC LIMIT %s",
        (limit,),
    )
    items = [
        {"from": r[0], "to": r[1], "actor": r[2], "reason": r[3], "automatic": r[4], "at": _iso(r[5])}
        for r in rows
    ]
    return {"items": items}


async def _alerts(conn: Any, limit: int) -> dict[str, Any]:
    """Open alerts first (newest first), then the latest resolved ones, ``limit`` in all."""
    (n_open,) = (await _rows(conn, "SELECT count(*) FROM alerts WHERE resolved_at IS NULL"))[0]
    rows = await _rows(
        conn,
        "SELECT kind, severity, message, source, run_id, created_at, resolved_at, resolution FROM alerts "
        "ORDER BY (resolved_at IS NULL) DESC, id DESC LIMIT %s",
        (limit,),
    )
    items = [
        {
            "kind": r[0],
            "severity": r[1],
            "message": r[2],
            "source": r[3],
            "run_id": r[4],
            "at": _iso(r[5]),
            "open": r[6] is None,
            "resolved_at": _iso(r[6]),
            "resolution": r[7],
        }
        for r in rows
    ]
    return {"open": int(n_open), "items": items}


async def _actions(conn: Any, limit: int) -> dict[str, Any]:
    """The observer's actions (``alert_actions``): waiting for an operator first, then newest."""
    from alina.monitoring.action_store import list_actions

    rows = await list_actions(conn, limit=limit)
    (n_waiting,) = (
        await _rows(conn, "SELECT count(*) FROM alert_actions WHERE status IN ('pending', 'approved')")
    )[0]
    items = [{k: _iso(v) if k.endswith("_at") else v for k, v in r.items()} for r in rows]
    return {"waiting": int(n_waiting), "items": items}


async def _usage(conn: Any, window_s: float, usd_per_1k: float) -> dict[str, Any]:
    """Model calls and tokens from the ``model_call`` events of the window (every attempt, also
    failed ones), and the token totals of the runs started in it; the cost is an estimate:
    tokens x ``usd_per_1k`` (0 for local models)."""
    rows = await _rows(
        conn,
        "SELECT coalesce(payload->>'outcome', 'unknown'), count(*), "
        "coalesce(sum((payload->>'prompt_tokens')::bigint), 0), "
        "coalesce(sum((payload->>'completion_tokens')::bigint), 0), "
        "coalesce(sum((payload->>'seconds')::double precision), 0) "
        "FROM events WHERE kind = 'model_call' AND created_at > now() - make_interval(secs => %s) "
        "GROUP BY 1 ORDER BY 1",
        (window_s,),
    )
    calls = sum(int(r[1]) for r in rows)
    prompt = sum(int(r[2]) for r in rows)
    completion = sum(int(r[3]) for r in rows)
    seconds = sum(float(r[4]) for r in rows)
    (r_runs, r_calls, r_prompt, r_completion) = (
        await _rows(
            conn,
            "SELECT count(*), coalesce(sum(model_calls), 0), coalesce(sum(prompt_tokens), 0), "
            "coalesce(sum(completion_tokens), 0) FROM runs "
            "WHERE started_at > now() - make_interval(secs => %s)",
            (window_s,),
        )
    )[0]
    tokens = prompt + completion
    return {
        "model_calls": calls,
        "by_outcome": {str(r[0]): int(r[1]) for r in rows},
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": tokens,
        "model_seconds": round(seconds, 3),
        "runs": {
            "runs": int(r_runs),
            "model_calls": int(r_calls),
            "prompt_tokens": int(r_prompt),
            "completion_tokens": int(r_completion),
        },
        "usd_per_1k_tokens": usd_per_1k,
        "estimated_cost_usd": round(tokens / 1000 * usd_per_1k, 6),
    }


async def _scores(conn: Any, window_s: float, last_n: int) -> dict[str, Any]:
    """Per agent and evaluation: the mean score and pass rate of the last ``last_n`` scores, and
    the mean over the window (None when none fell in it)."""
    rows = await _rows(
        conn,
        "SELECT agent, name, avg(score), avg(passed::int), count(*), "
        "avg(score) FILTER (WHERE created_at > now() - make_interval(secs => %s)), max(created_at) "
        "FROM (SELECT agent, name, score, passed, created_at, row_number() OVER "
        "(PARTITION BY agent, name ORDER BY created_at DESC, id DESC) AS k FROM evaluations) e "
        "WHERE k <= %s GROUP BY agent, name ORDER BY agent, name",
        (window_s, last_n),
    )
    items = [
        {
            "agent": r[0],
            "evaluation": r[1],
            "mean": round(float(r[2]), 4),
            "ok_rate": round(float(r[3]), 4),
            "n": int(r[4]),
            "window_mean": None if r[5] is None else round(float(r[5]), 4),
            "last_at": _iso(r[6]),
        }
        for r in rows
    ]
    return {"last_n": last_n, "items": items}


def paper_summary(state: dict[str, Any]) -> dict[str, Any]:
    """Equity and PnL of a paper account from its snapshot (:meth:`PaperExchange.to_state`),
    without a price feed: holdings are marked at their last fill price, so the equity is an
    estimate when prices moved since."""
    quote = str(state.get("quote", "USDT"))
    free, used = state.get("free", {}) or {}, state.get("used", {}) or {}
    totals = {c: float(free.get(c, 0.0)) + float(used.get(c, 0.0)) for c in set(free) | set(used)}
    marks: dict[str, float] = {}
    for f in state.get("fills", []) or []:  # in execution order: the last one wins
        marks[str(f["symbol"])] = float(f["price"])
    cash = totals.get(quote, 0.0)
    holdings = {c: q for c, q in sorted(totals.items()) if c != quote and abs(q) > _EPS}
    unmarked = [c for c in holdings if f"{c}/{quote}" not in marks]
    equity = cash + sum(q * marks.get(f"{c}/{quote}", 0.0) for c, q in holdings.items())
    start = state.get("start_equity")
    start_f = float(start) if start else equity
    day_start = state.get("day_start_equity")
    return {
        "quote": quote,
        "cash": round(cash, 8),
        "holdings": holdings,
        "marks": {f"{c}/{quote}": marks[f"{c}/{quote}"] for c in holdings if f"{c}/{quote}" in marks},
        "unmarked": unmarked,
        "equity": round(equity, 8),
        "start_equity": round(start_f, 8),
        "total_pnl": round(equity - start_f, 8),
        "day_pnl": None if day_start is None else round(equity - float(day_start), 8),
        "realized_pnl": round(sum(float(v) for v in (state.get("realized") or {}).values()), 8),
        "fees_paid": round(float(state.get("fees_paid", 0.0)), 8),
        "open_orders": sum(1 for o in state.get("orders", []) or [] if o.get("status") == "open"),
        "fills": len(state.get("fills", []) or []),
    }


async def _paper(conn: Any) -> dict[str, Any]:
    rows = await _rows(conn, "SELECT account, state, updated_at FROM paper_accounts ORDER BY account")
    accounts = []
    for account, state, updated in rows:
        try:
            accounts.append({"account": account, "updated_at": _iso(updated), **paper_summary(dict(state))})
        except (KeyError, TypeError, ValueError) as exc:  # one odd snapshot does not hide the others
            accounts.append({"account": account, "updated_at": _iso(updated), "error": error_line(exc)})
    return {"accounts": accounts, "priced_at": "last fill price"}


async def _runs(conn: Any, window_s: float) -> dict[str, Any]:
    rows = await _rows(
        conn,
        "SELECT status, count(*) FROM runs WHERE started_at > now() - make_interval(secs => %s) "
        "GROUP BY status ORDER BY status",
        (window_s,),
    )
    by_status = {str(r[0]): int(r[1]) for r in rows}
    return {"total": sum(by_status.values()), "by_status": by_status}


async def _model_calls(cfg: Any, redis: Any, rd: dict[str, Any]) -> dict[str, Any]:
    """Model calls in flight across processes: the unexpired governor leases in Redis (a lease
    is held for the duration of a call), per model server, and the configured cap."""
    cap = cfg.team.max_concurrent_model_calls
    base = {"cap_per_server": cap}
    if cfg.team.governor_lease_ttl_s <= 0:
        return {
            "available": False,
            **base,
            "error": "team.governor_lease_ttl_s is 0: no cross-process leases to count",
        }
    if not rd["ok"]:
        return {"available": False, **base, "error": "Redis is down (stores.redis says why)"}

    async def read() -> dict[str, Any]:
        secs, micros = await redis.time()  # Redis time: the leases' scores are on its clock
        now_ms = int(secs) * 1000 + int(micros) // 1000
        servers: dict[str, int] = {}
        async for key in redis.scan_iter(match=f"{GOVERNOR_PREFIX}*", count=100):
            servers[key[len(GOVERNOR_PREFIX) :]] = int(await redis.zcount(key, f"({now_ms}", "+inf"))
        return {**base, "in_flight": sum(servers.values()), "per_server": servers}

    return await _section(read)
