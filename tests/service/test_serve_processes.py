"""`alina serve` and `alina worker` as real processes on real Postgres and Redis, with the
simulated model server (bench/_simmodel.py: fixed latency, no CPU) so that the engine, not a
model, is what is tested.

* two serve processes: every scheduled occurrence runs exactly once, both exit 0 on SIGTERM;
* SIGTERM mid-run: the turn in flight is finished and committed, the process exits 0 within
  serve.grace_s, and the run is resumed by the next process;
* SIGKILL of serve and workers at random during submitted runs (>= 10 kills): every run completes
  exactly once, no message lost or repeated, no order sent twice, and the model-call cap holds
  across all processes.

The kill seed is printed and can be replayed with ALINA_SERVE_KILL_SEED.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.service import _procs as P

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def sim(tmp_path: Path) -> Any:
    procs: list[P.Proc] = []

    def start(latency: float) -> str:
        proc, url = P.start_sim(tmp_path, latency)
        procs.append(proc)
        return url

    yield start
    for p in procs:
        p.kill()


@pytest.fixture
def procs() -> Any:
    started: list[P.Proc] = []
    yield started
    for p in started:
        p.kill()


def _config(tmp: Path, dsn_db: str, pg: Any, redis: Any, sim_url: str, **kw: Any) -> Path:
    class _Pg:
        port = pg.port
        host = pg.host

    path = P.write_config(
        tmp / "config.yaml",
        pg=_Pg,
        redis_host=redis.host,
        redis_port=redis.port,
        sim_url=sim_url,
        data=tmp / "data",
        **kw,
    )
    # each test has its own database on the session's server
    import yaml

    cfg = yaml.safe_load(path.read_text())
    cfg["postgres"]["database"] = dsn_db.rsplit("/", 1)[1]
    path.write_text(yaml.safe_dump(cfg))
    return path


def _stats(sim_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(sim_url.removesuffix("/v1") + "/stats", timeout=5) as r:
        return dict(json.loads(r.read()))


def test_two_serve_processes_run_every_scheduled_occurrence_exactly_once(
    tmp_path: Path,
    fresh_pg_dsn: str,
    pg_service: Any,
    redis_service: Any,
    sim: Any,
    procs: list[P.Proc],
    free_port: Any,
) -> None:
    url = sim(0.05)
    jobs = {
        "tick": {"kind": "team", "every_s": 2, "task": "Is the system healthy?", "misfire": "once"},
        "optimizer_review": {"kind": "review", "cron": "0 * * * *", "enabled": False},
    }
    config = _config(tmp_path, fresh_pg_dsn, pg_service, redis_service, url, jobs=jobs)
    port = free_port()
    a = P.alina("serve", config, tmp_path / "serve-a.log", "--port", str(port))
    b = P.alina("serve", config, tmp_path / "serve-b.log", "--port", str(free_port()))
    procs += [a, b]
    for p in (a, b):
        p.wait_for(" ready: ", 90)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert json.loads(r.read())["ok"] is True
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert b"alina_" in r.read()
    time.sleep(12)
    assert a.term(30) == 0 and b.term(30) == 0, a.text()[-3000:] + b.text()[-3000:]
    with psycopg.connect(fresh_pg_dsn) as conn:
        rows = conn.execute(
            "SELECT scheduled_for, status, run_id, attempts FROM job_occurrences WHERE job_name = 'tick' "
            "ORDER BY scheduled_for"
        ).fetchall()
        runs = conn.execute("SELECT id, status, resumes FROM runs").fetchall()
    finished = [r for r in rows if r[1] == "succeeded"]
    assert len(finished) >= 4, rows
    times = [r[0].timestamp() for r in rows]
    assert len(set(times)) == len(times), "an occurrence recorded twice"
    assert all(round(t2 - t1) == 2 for t1, t2 in zip(times, times[1:], strict=False)), f"a gap: {times}"
    by_id = {r[0]: r for r in runs}
    for r in finished:
        assert by_id[r[2]][1:] == ("completed", 0), (r, by_id.get(r[2]))
    assert len(runs) == len({r[2] for r in rows if r[2]}), "a run started twice"
    # what ran when, as the operator sees it
    listed = P.cli(config, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tick = next(j for j in json.loads(listed.stdout) if j["name"] == "tick")
    assert tick["schedule"] == "* * * * * */2" and tick["last"]["status"] in (
        "succeeded",
        "running",
        "queued",
    )
    assert "tick" in P.cli(config, "runs", "list").stdout
    assert P.cli(config, "jobs", "pause", "tick").returncode == 0
    listed = P.cli(config, "jobs", "list", "--json")
    paused = next(j for j in json.loads(listed.stdout) if j["name"] == "tick")
    assert paused["paused"] is True
    assert P.cli(config, "jobs", "run", "nope").returncode == 2


def test_sigterm_finishes_the_turn_exits_0_and_the_run_resumes_elsewhere(
    tmp_path: Path,
    fresh_pg_dsn: str,
    pg_service: Any,
    redis_service: Any,
    sim: Any,
    procs: list[P.Proc],
) -> None:
    url = sim(1.0)  # a turn takes about a second: the signal lands inside one
    config = _config(tmp_path, fresh_pg_dsn, pg_service, redis_service, url, serve={"grace_s": 8.0})
    serve = P.alina("serve", config, tmp_path / "serve.log", "--port", "0")
    procs.append(serve)
    serve.wait_for(" ready: ", 90)
    run_ids = [P.submit(config), P.submit(config)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both runs have a committed turn
        with psycopg.connect(fresh_pg_dsn) as conn:
            row = conn.execute(
                "SELECT count(DISTINCT run_id) FROM checkpoints WHERE run_id = ANY(%s)", (run_ids,)
            ).fetchone()
        if row and row[0] == 2:
            break
        time.sleep(0.2)
    started = time.monotonic()
    assert serve.term(30) == 0, serve.text()[-3000:]
    assert time.monotonic() - started < 8.0 + 1.0  # within grace_s (and the process exited 0)
    with psycopg.connect(fresh_pg_dsn) as conn:
        stopped = conn.execute("SELECT status, error FROM runs WHERE id = ANY(%s)", (run_ids,)).fetchall()
        queued = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    assert all(s[0] in ("stopped", "completed") for s in stopped), stopped
    assert queued is not None and queued[0] == sum(s[0] == "stopped" for s in stopped)
    worker = P.alina("worker", config, tmp_path / "worker.log")
    procs.append(worker)
    worker.wait_for(" ready: ", 90)  # (both runs may have finished within the grace period)
    P.wait_runs_done(fresh_pg_dsn, run_ids, timeout=120)
    P.check_runs_exactly_once(fresh_pg_dsn, run_ids)
    assert worker.term(30) == 0


KILLS = 10


def test_sigkill_of_serve_and_workers_loses_nothing_and_repeats_nothing(
    tmp_path: Path,
    fresh_pg_dsn: str,
    pg_service: Any,
    redis_service: Any,
    sim: Any,
    procs: list[P.Proc],
) -> None:
    seed = int(os.environ.get("ALINA_SERVE_KILL_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    print(f"\nALINA_SERVE_KILL_SEED={seed}")
    url = sim(0.5)
    cap = 2
    config = _config(tmp_path, fresh_pg_dsn, pg_service, redis_service, url, max_calls=cap)
    roles = ("serve", "worker-1", "worker-2")
    live: dict[str, P.Proc] = {}
    starts = dict.fromkeys(roles, 0)

    def start(role: str) -> None:
        starts[role] += 1
        extra = ["--port", "0"] if role == "serve" else []
        proc = P.alina(
            "serve" if role == "serve" else "worker",
            config,
            tmp_path / f"{role}-{starts[role]}.log",
            "--name",
            role,
            *extra,
        )
        procs.append(proc)
        live[role] = proc

    for role in roles:
        start(role)
    for p in live.values():
        p.wait_for(" ready: ", 90)
    run_ids = [P.submit(config) for _ in range(10)]
    kills = 0
    deadline = time.monotonic() + 300
    while kills < KILLS and time.monotonic() < deadline:
        # kill a process while it holds a run: mid-turn, inside a model call or a commit
        with psycopg.connect(fresh_pg_dsn) as conn:
            holders = {
                r[0]
                for r in conn.execute(
                    "SELECT worker FROM job_occurrences WHERE status = 'running'"
                ).fetchall()
            }
            left = conn.execute(
                "SELECT count(*) FROM job_occurrences WHERE status IN ('queued', 'running')"
            ).fetchone()
        ready = [r for r in sorted(holders & set(roles)) if live[r].alive() and " ready: " in live[r].text()]
        if not ready:
            if left and left[0] == 0:  # everything finished before the dice were done: more work
                run_ids += [P.submit(config) for _ in range(3)]
            time.sleep(0.1)
            continue
        time.sleep(rng.uniform(0.0, 1.0))
        role = rng.choice(ready)
        live[role].kill()
        kills += 1
        start(role)
    P.wait_runs_done(fresh_pg_dsn, run_ids, timeout=300)
    totals = P.check_runs_exactly_once(fresh_pg_dsn, run_ids)
    stats = _stats(url)
    with psycopg.connect(fresh_pg_dsn) as conn:
        attempts = conn.execute(
            "SELECT sum(attempts) FROM job_occurrences WHERE run_id = ANY(%s)", (run_ids,)
        ).fetchone()
    print(
        json.dumps(
            {
                "seed": seed,
                "kills": kills,
                **totals,
                "attempts": attempts[0] if attempts else None,
                "model_requests": stats["requests"],
                "peak_in_flight": stats["peak"],
            }
        )
    )
    assert kills >= KILLS
    assert stats["peak"] <= cap, f"{stats['peak']} model calls at once; the cap is {cap}"
