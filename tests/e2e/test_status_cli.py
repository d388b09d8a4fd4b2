"""``alina status`` end to end: real Postgres and Redis seeded with alerts, a mode transition,
model-call events, runs, evaluations, a paper snapshot and a governor lease; the CLI runs in a
subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis
import yaml
from psycopg.types.json import Jsonb

from alina.memory_store import migrate
from alina.runtime.status import MonitorStatus, monitor_status_line

pytestmark = pytest.mark.integration


def alina(*args: str, config: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALINA_CONFIG"}
    cmd = [sys.executable, "-m", "alina", *args, "--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


PAPER_STATE = {
    "version": 1,
    "quote": "USDT",
    "clock_ms": 0,
    "free": {"USDT": 9000.0, "BTC": 0.02},
    "used": {"USDT": 500.0},
    "orders": [{"status": "open"}, {"status": "filled"}],
    "reserved": {},
    "checked": {},
    "fills": [
        {"symbol": "BTC/USDT", "price": 40000.0, "side": "buy"},
        {"symbol": "BTC/USDT", "price": 50000.0, "side": "buy"},
    ],
    "entry": {},
    "realized": {"BTC/USDT": 12.5},
    "fees_paid": 3.0,
    "seq": 2,
    "start_equity": 10000.0,
    "day": "2026-01-01",
    "day_start_equity": 10400.0,
}


@pytest.fixture
def seeded(fresh_pg_dsn: str, pg_service, redis_service, infra_root: Path, tmp_path: Path) -> Path:
    """A config on a fresh database with one of everything ``alina status`` reports."""

    async def migrated() -> None:
        async with await psycopg.AsyncConnection.connect(fresh_pg_dsn, autocommit=True) as conn:
            await migrate(conn)

    asyncio.run(migrated())
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as conn:
        runs = [
            ("r1", "completed", "10 minutes"),
            ("r2", "failed", "5 minutes"),
            ("r3", "completed", "20 minutes"),
            ("old", "completed", "3 hours"),
        ]
        for rid, status, ago in runs:
            conn.execute(
                "INSERT INTO runs (id, task, status, started_at, model_calls, prompt_tokens, "
                "completion_tokens) VALUES (%s, 't', %s, now() - %s::interval, 2, 100, 20)",
                (rid, status, ago),
            )
        for outcome, p, c, s in [("ok", 100, 10, 1.5), ("ok", 200, 20, 2.5), ("timeout", 0, 0, 4.0)]:
            payload = {
                "agent": "trader",
                "outcome": outcome,
                "prompt_tokens": p,
                "completion_tokens": c,
                "seconds": s,
            }
            conn.execute(
                "INSERT INTO events (run_id, kind, payload) VALUES ('r1', 'model_call', %s)",
                (Jsonb(payload),),
            )
        conn.execute(
            "INSERT INTO events (run_id, kind, payload, created_at) VALUES "
            "('old', 'model_call', '{\"prompt_tokens\": 9999, \"outcome\": \"ok\"}', "
            "now() - interval '2 hours')"
        )
        for seq, (name, agent, score) in enumerate(
            [("answer_check", "alina", 1.0), ("answer_check", "alina", 0.5), ("output_check", "trader", 0.8)]
        ):
            conn.execute(
                "INSERT INTO evaluations (run_id, message_seq, name, agent, score, passed) "
                "VALUES ('r1', %s, %s, %s, %s, %s)",
                (seq, name, agent, score, score >= 0.7),
            )
        conn.execute(
            "INSERT INTO mode_transitions (from_mode, to_mode, actor, reason, automatic) "
            "VALUES ('normal', 'degraded', 'operator', 'disk almost full', false)"
        )
        conn.execute(
            "INSERT INTO alerts (kind, severity, message, resolved_at) "
            "VALUES ('latency', 'warning', 'old slow model', now())"
        )
        conn.execute(
            "INSERT INTO alerts (kind, severity, message) VALUES ('mode', 'critical', 'disk almost full')"
        )
        conn.execute(
            "INSERT INTO paper_accounts (account, state) VALUES ('paper:binance', %s)", (Jsonb(PAPER_STATE),)
        )
    r = redis.Redis(port=redis_service.port)
    r.flushdb()  # the mode comes from Postgres (Redis lost it), the leases are this test's
    secs, micros = r.time()
    r.zadd("alina:governor:http://model:1", {"lease-a": secs * 1000 + micros // 1000 + 600_000})
    r.zadd("alina:governor:http://model:1", {"expired": secs * 1000 - 1})
    r.close()
    cfg = tmp_path / "c.yaml"
    db = fresh_pg_dsn.rsplit("/", 1)[1]
    cfg.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(infra_root / "data")},
                "postgres": {"port": pg_service.port, "database": db},
                "redis": {"port": redis_service.port},
                "team": {"max_concurrent_model_calls": 3},
            }
        )
    )
    return cfg


def test_status_json_reports_every_section(seeded: Path) -> None:
    p = alina("status", "--json", "--usd-per-1k-tokens", "2", config=seeded)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["stores"]["postgres"]["ok"] and s["stores"]["redis"]["ok"]
    assert s["mode"]["available"] and s["mode"]["mode"] == "degraded" and s["mode"]["actor"] == "operator"
    assert [(t["from"], t["to"], t["reason"]) for t in s["transitions"]["items"]] == [
        ("normal", "degraded", "disk almost full")
    ]
    alerts = s["alerts"]
    assert alerts["open"] == 1
    assert [(a["message"], a["open"]) for a in alerts["items"]] == [
        ("disk almost full", True),
        ("old slow model", False),
    ]
    mc = s["model_calls"]
    assert mc == {"available": True, "cap_per_server": 3, "in_flight": 1, "per_server": {"http://model:1": 1}}
    u = s["usage"]
    assert u["model_calls"] == 3 and u["by_outcome"] == {"ok": 2, "timeout": 1}  # the 2 h old one is out
    assert (u["prompt_tokens"], u["completion_tokens"], u["tokens"]) == (300, 30, 330)
    assert u["model_seconds"] == pytest.approx(8.0)
    assert u["estimated_cost_usd"] == pytest.approx(0.66)
    assert u["runs"] == {"runs": 3, "model_calls": 6, "prompt_tokens": 300, "completion_tokens": 60}
    scores = {(x["agent"], x["evaluation"]): x for x in s["scores"]["items"]}
    assert scores[("alina", "answer_check")]["mean"] == pytest.approx(0.75)
    assert scores[("alina", "answer_check")]["ok_rate"] == pytest.approx(0.5)
    assert scores[("alina", "answer_check")]["window_mean"] == pytest.approx(0.75)
    assert scores[("trader", "output_check")]["n"] == 1
    (acct,) = s["paper"]["accounts"]
    assert acct["account"] == "paper:binance"
    assert acct["cash"] == pytest.approx(9500.0) and acct["holdings"] == {"BTC": pytest.approx(0.02)}
    assert acct["marks"] == {"BTC/USDT": 50000.0}  # the last fill
    assert acct["equity"] == pytest.approx(10500.0)
    assert acct["total_pnl"] == pytest.approx(500.0) and acct["day_pnl"] == pytest.approx(100.0)
    assert acct["realized_pnl"] == pytest.approx(12.5) and acct["fees_paid"] == pytest.approx(3.0)
    assert acct["open_orders"] == 1
    assert s["runs"] == {"available": True, "total": 3, "by_status": {"completed": 2, "failed": 1}}


def test_status_text_names_the_mode_and_the_alerts(seeded: Path) -> None:
    p = alina("status", config=seeded)
    assert p.returncode == 0, p.stderr
    assert "mode: degraded" in p.stdout
    assert "alerts (1 open)" in p.stdout and "disk almost full" in p.stdout
    assert "model calls in flight: 1 (cap 3 per server" in p.stdout
    assert "paper:binance" in p.stdout and "10500.00 USDT" in p.stdout


def test_status_without_postgres_exits_1_and_says_why(tmp_path: Path, free_port, redis_service) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"postgres": {"port": free_port(), "connect_timeout_s": 2}, "redis": {"port": redis_service.port}}
        )
    )
    p = alina("status", "--json", config=cfg)
    assert p.returncode == 1
    assert "cannot reach Postgres" in p.stderr and "Traceback" not in p.stderr
    s = json.loads(p.stdout)  # the sections that do not need Postgres still answer
    assert s["stores"]["postgres"]["ok"] is False and s["stores"]["redis"]["ok"] is True
    assert s["alerts"]["available"] is False and s["model_calls"]["available"] is True
    assert s["mode"]["available"] is True  # from Redis


def test_status_watch_stops_cleanly_on_ctrl_c(seeded: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALINA_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "alina", "status", "--watch", "0.3", "--config", str(seeded)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # printed once every import is done and the loop starts
    assert "Ctrl-C to stop" in first
    proc.send_signal(signal.SIGINT)
    out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert "mode: degraded" in out


def test_monitor_line_reports_mode_and_open_alerts(seeded: Path, fresh_pg_dsn: str, free_port) -> None:
    assert MonitorStatus(lambda: "degraded", fresh_pg_dsn).line() == "status: mode degraded, 1 open alert"
    gone = f"postgresql://x@127.0.0.1:{free_port()}/x"
    assert (
        MonitorStatus(lambda: "normal", gone)
        .line()
        .startswith("status: mode normal, open alerts unavailable (")
    )
    assert monitor_status_line() == (
        "status: mode and alerts unavailable (no stores configured in this process)"
    )
