"""Real processes for the serve/worker tests: the simulated model server, `alina serve`,
`alina worker` (optionally inside a network namespace), and what the database says afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

REPO = Path(__file__).resolve().parents[2]
ORDER_TASK = "Place a market buy of 0.001 BTC/USDT, then check the system health."


class Proc:
    """A child process whose output is collected in the background (a log file)."""

    def __init__(self, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.cmd, self.log = cmd, log
        self._fh = log.open("ab")
        self.p = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env, cwd=REPO)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(
            f"{' '.join(self.cmd[:6])}: no {needle!r} (exit {self.p.poll()}):\n{self.text()[-4000:]}"
        )

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(timeout=30)

    def term(self, timeout: float = 60.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout=timeout)

    def alive(self) -> bool:
        return self.p.poll() is None


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k != "ALINA_CONFIG"}
    e.update(PYTHONUNBUFFERED="1", ANONYMIZED_TELEMETRY="False", PYTHONPATH=str(REPO))
    return e


def start_sim(
    tmp: Path, latency: float, host: str = "127.0.0.1", netns: str | None = None
) -> tuple[Proc, str]:
    """The simulated model server; returns it and its base URL."""
    cmd = [sys.executable, "-m", "bench._simmodel", "--host", host, "--port", "0", "--latency", str(latency)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = Proc(cmd, tmp / f"sim-{host}.log", env())
    proc.wait_for("listening on ", 30)
    url = proc.text().split("listening on ", 1)[1].split()[0]
    return proc, url


def write_config(
    path: Path,
    *,
    pg: Any,
    redis_host: str,
    redis_port: int,
    sim_url: str,
    data: Path,
    jobs: dict[str, Any] | None = None,
    serve: dict[str, Any] | None = None,
    pg_host: str | None = None,
    max_calls: int = 4,
) -> Path:
    """A config whose every agent talks to the simulated server (fast, no CPU)."""
    sim = {"provider": "openai", "model": "sim", "base_url": sim_url, "timeout_s": 30.0, "retries": 1}
    cfg = {
        "paths": {"data_dir": str(data)},
        "models": {"sim": sim},
        "agents": {a: {"model": "sim"} for a in ("alina", "trader", "monitor", "optimizer")},
        "team": {
            "check_answers": False,
            "max_turns": 6,
            "max_concurrent_model_calls": max_calls,
            "governor_lease_ttl_s": 3.0,
        },
        "postgres": {"port": pg.port, "host": pg_host or pg.host},
        "redis": {"host": redis_host, "port": redis_port},
        "cache": {"enabled": False},
        "memory": {"enabled": False},
        "alerts": {"enabled": False},
        "resilience": {"store_outage_s": 60.0},
        "serve": {
            "concurrency": 2,
            "grace_s": 8.0,
            "heartbeat_s": 0.5,
            "stalled_after_s": 2.0,
            "poll_s": 0.5,
            "misfire_grace_s": 30.0,
            **(serve or {}),
        },
        "jobs": jobs
        or {
            "optimizer_review": {"kind": "review", "cron": "0 * * * *", "enabled": False},
            "order_reconcile": {"kind": "reconcile", "every_s": 300, "enabled": False},
            "retention": {"kind": "retention", "cron": "30 3 * * *", "enabled": False},
        },
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def alina(role: str, config: Path, log: Path, *args: str, netns: str | None = None) -> Proc:
    cmd = [sys.executable, "-m", "alina", role, "--config", str(config), *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = Proc(cmd, log, env())
    return proc


def cli(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alina", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        cwd=REPO,
    )


def submit(config: Path, task: str = ORDER_TASK, *extra: str) -> str:
    r = cli(config, "submit", task, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["run_id"])


def wait_runs_done(dsn: str, run_ids: list[str], timeout: float = 180.0, tick: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM job_occurrences WHERE run_id = ANY(%s) "
                "AND status IN ('succeeded', 'failed')",
                (run_ids,),
            ).fetchone()
        if rows and rows[0] == len(run_ids):
            return
        if tick is not None:
            tick()
        time.sleep(0.3)
    raise AssertionError(f"runs not done within {timeout}s")


def check_runs_exactly_once(dsn: str, run_ids: list[str], task: str = ORDER_TASK) -> dict[str, int]:
    """Every run completed once: one runs row, status completed, messages 1..n without a gap or
    a repeat, the task once, ALINA last; every placed order is one committed tool result (no
    order sent twice, none without its record). Returns totals."""
    totals = {"runs": 0, "messages": 0, "orders": 0, "resumes": 0}
    with psycopg.connect(dsn) as conn:
        for run_id in run_ids:
            row = conn.execute("SELECT status, resumes FROM runs WHERE id = %s", (run_id,)).fetchone()
            assert row is not None, f"run {run_id} never started"
            assert row[0] == "completed", f"run {run_id}: {row[0]}"
            occ = conn.execute(
                "SELECT status, attempts FROM job_occurrences WHERE run_id = %s", (run_id,)
            ).fetchall()
            assert len(occ) == 1 and occ[0][0] == "succeeded", f"run {run_id}: occurrences {occ}"
            msgs = conn.execute(
                "SELECT seq, source, type, content FROM messages WHERE run_id = %s ORDER BY seq", (run_id,)
            ).fetchall()
            assert [m[0] for m in msgs] == list(range(1, len(msgs) + 1)), f"run {run_id}: gap or repeat"
            assert msgs[0][1:] == ("user", "TextMessage", task)
            assert sum(m[1] == "user" for m in msgs) == 1
            assert msgs[-1][1] == "alina"
            reported = sum(
                m[3].count("place_order: placed") for m in msgs if m[2] == "ToolCallExecutionEvent"
            )
            placed = conn.execute(
                "SELECT count(*), count(DISTINCT request_id) FROM order_intents WHERE request_id LIKE %s "
                "AND status = 'placed'",
                (run_id + ":%",),
            ).fetchone()
            assert placed is not None and placed[0] == placed[1] == reported, (
                f"run {run_id}: {placed} placed intents, {reported} reported in its messages"
            )
            totals["runs"] += 1
            totals["messages"] += len(msgs)
            totals["orders"] += reported
            totals["resumes"] += row[1]
        # one intent per order request: a redone turn reuses its request, it never sends a second
        dup = conn.execute(
            "SELECT count(*) - count(DISTINCT request_id) FROM order_intents WHERE request_id IS NOT NULL"
        ).fetchone()
        assert dup is not None and dup[0] == 0, "an order request sent twice"
    return totals
