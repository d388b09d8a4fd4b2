"""Exactly-once orders on the agents' own path, under SIGKILL.

Each trial is a real team run (tests/e2e/_order_driver.py: the product's run loop, trading
skills, desk, order intents and paper exchange on real Postgres; scripted models) whose task
places two orders, then cancels one and places a third. The process is SIGKILLed at a random
point: right after an order intent is written (before the exchange is called), right after the
paper exchange placed or cancelled an order (before the intent or the turn is saved), just
before a turn commit, or after a random delay. It is then resumed (and may be killed again)
until it completes. After every trial:

* the run completed;
* each of the run's three intended orders has exactly one placed intent in ``order_intents``
  (an intent that a kill left unsent is reconciled as ``not_placed`` and its request reused);
* the paper exchange holds exactly three new orders (none sent twice), each the one its intent
  names: the limit buy canceled, the two market orders filled.

The seed is printed and can be replayed with ALINA_ORDER_KILL_SEED.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

DRIVER = Path(__file__).with_name("_order_driver.py")
TASK = (
    "Place a limit buy of 0.001 BTC/USDT 3% below the market and a market buy of 0.002 BTC/USDT, "
    "then check the system health, then cancel the limit order and sell 0.002 BTC/USDT at market."
)
MIN_KILLS = 20
POINTS = (
    "intent:1",
    "intent:2",
    "exchange:1",
    "exchange:2",
    "cancel:1",
    "intent:3",
    "exchange:3",
    "commit:1",
    "commit:2",
    "commit:3",
    "time",
)


def _driver(config: Path, run_id: str, *, task: str | None, kill: str | None, delay: float | None) -> int:
    cmd = [sys.executable, str(DRIVER), str(config), run_id]
    cmd += ["--task", task] if task else ["--resume"]
    if kill:
        cmd += ["--kill", kill]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    if delay is not None:
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"driver exited {proc.returncode}:\n{out.decode(errors='replace')[-4000:]}")
    return proc.returncode


def _paper_orders(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    row = conn.execute("SELECT state FROM paper_accounts").fetchone()
    return {o["client_order_id"]: o for o in (row[0]["orders"] if row else [])}


@pytest.fixture
def orders_config(pg_service: Any, redis_service: Any, infra_root: Path) -> Any:
    name = f"orders_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_service.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    path = infra_root / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(infra_root / "data")},
                "postgres": {"port": pg_service.port, "database": name},
                "redis": {"port": redis_service.port},
                "memory": {"enabled": False},
                "cache": {"enabled": False},
            }
        )
    )
    yield path, pg_service.dsn_for(name)
    with psycopg.connect(pg_service.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.slow
@pytest.mark.integration
def test_order_runs_killed_anywhere_place_each_order_exactly_once(orders_config: Any) -> None:
    config, dsn = orders_config
    seed = int(os.environ.get("ALINA_ORDER_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"\nALINA_ORDER_KILL_SEED={seed}")
    kills = trial = 0
    report = []
    while kills < MIN_KILLS:
        assert trial < 3 * MIN_KILLS, f"too few kills landed (seed {seed}): {report}"
        run_id = uuid.uuid4().hex
        with psycopg.connect(dsn) as conn:
            before = _paper_orders(conn) if trial else {}
        attempts, task = [], TASK
        while True:
            point = rng.choice(POINTS) if len(attempts) < 4 else None  # the last attempt runs through
            kill = None if point in (None, "time") else point
            delay = rng.uniform(0.3, 2.5) if point == "time" else None
            code = _driver(config, run_id, task=task, kill=kill, delay=delay)
            attempts.append((point, code))
            if code == 0:
                break
            with psycopg.connect(dsn) as conn:  # killed before the run was even recorded: start over
                known = conn.execute("SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone()
            task = None if known else TASK
        trial_kills = sum(code == -signal.SIGKILL for _, code in attempts)
        kills += trial_kills
        report.append({"trial": trial, "attempts": attempts})
        with psycopg.connect(dsn) as conn:
            status = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()
            intents = conn.execute(
                "SELECT request_id, client_order_id, status, side, type FROM order_intents "
                "WHERE request_id LIKE %s ORDER BY created_at",
                (run_id + ":%",),
            ).fetchall()
            orders = _paper_orders(conn)
        assert status == ("completed",), f"trial {trial} (seed {seed}): {attempts}"
        placed = [i for i in intents if i[2] == "placed"]
        by_request: dict[str, int] = {}
        for i in placed:
            by_request[i[0]] = by_request.get(i[0], 0) + 1
        assert sorted(by_request.values()) == [1, 1, 1], f"trial {trial} (seed {seed}): {intents}"
        assert all(i[2] in ("placed", "not_placed") for i in intents), intents
        new = {cid: o for cid, o in orders.items() if cid not in before}
        assert set(new) == {i[1] for i in placed}, f"trial {trial} (seed {seed}): {attempts} {intents}"
        kinds = sorted((o["side"], o["type"], o["status"]) for o in new.values())
        assert kinds == [
            ("buy", "limit", "canceled"),
            ("buy", "market", "closed"),
            ("sell", "market", "closed"),
        ], kinds
        trial += 1
    print(json.dumps({"trials": trial, "kills": kills, "report": report}))
