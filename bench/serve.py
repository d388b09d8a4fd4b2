"""Serve and workers: team runs per minute with 1, 2 and 4 `alina worker` processes, queue wait,
scheduling jitter, and the engine's own overhead per job.

* (b) simulated model: every agent talks to ``bench/_simmodel.py`` (OpenAI-compatible, answers
  after a fixed latency, no CPU), so throughput is bounded by the engine, not by a model. Each
  worker runs one team run at a time (``--concurrency 1``); the model-call cap (4) is not the
  limit at 4 workers. Goal: at 4 workers >= 0.9x the 1-worker rate times 4.
* (a) embedded model (SmolLM2 135M in every worker process, on this machine's CPUs): the same
  with fewer runs; on a 2-core box the workers compete for the cores, so this shows the machine's
  limit rather than the engine's.
* queue wait: enqueued -> started, from ``job_occurrences``; p50/p95 over all runs of (b).
* scheduling jitter: `alina serve` with a short job (order reconciliation) every 2 s; started -
  scheduled time per occurrence.
  Goal p95 < 1 s (Procrastinate's scheduler oversleeps by 0.5 s on purpose).
* engine overhead: an idle worker's latency per job (enqueue -> run finished) minus the same
  team run called directly in this process (``TeamRunner.run``, same model server).

Postgres, Redis and the model server are started here on free ports and stopped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench._harness import Goal, Result, progress

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".alina" / "bench-serve"
TASK = "Place a market buy of 0.001 BTC/USDT, then check the system health."
LATENCY_S = 2.0  # a model call on a CPU server takes seconds; the engine must overlap them


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class _Env:
    def __init__(self) -> None:
        from alina.runtime.services import PostgresService, RedisService

        shutil.rmtree(WORK, ignore_errors=True)
        WORK.mkdir(parents=True)
        WORK.chmod(0o755)
        self.pg = PostgresService(data_dir=WORK / "pg", port=_free_port(), fast=True)
        self.redis = RedisService(data_dir=WORK / "redis", port=_free_port())
        self.pg.start()
        self.redis.start()
        sys.path.insert(0, str(REPO))
        from tests.service import _procs as procs

        self.P = procs
        self.sim, self.sim_url = procs.start_sim(WORK, LATENCY_S)
        self.n = 0

    def database(self) -> str:
        """A fresh database for one measurement (so counts start at zero)."""
        import psycopg

        self.n += 1
        name = f"bench{self.n}"
        with psycopg.connect(self.pg.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return name

    def config(self, name: str, *, embedded: bool, jobs: dict[str, Any] | None = None) -> tuple[Path, str]:
        import yaml

        db = self.database()
        path = self.P.write_config(
            WORK / f"{name}.yaml",
            pg=self.pg,
            redis_host=self.redis.host,
            redis_port=self.redis.port,
            sim_url=self.sim_url,
            data=WORK / "data",
            jobs=jobs,
        )
        cfg = yaml.safe_load(path.read_text())
        cfg["postgres"]["database"] = db
        cfg["serve"].update(heartbeat_s=2.0, stalled_after_s=10.0, poll_s=1.0)
        cfg["team"]["governor_lease_ttl_s"] = 30.0
        if embedded:
            cfg.pop("models")
            cfg["agents"] = {a: {"model": "embedded"} for a in ("alina", "trader", "monitor", "optimizer")}
            cfg["agents"]["alina"]["max_tokens"] = 64
        path.write_text(yaml.safe_dump(cfg))
        return path, self.pg.dsn_for(db)

    def close(self) -> None:
        self.sim.kill()
        self.redis.stop()
        self.pg.stop()


def _occurrences(dsn: str, run_ids: list[str]) -> list[tuple[float, float, float]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM enqueued_at), extract(epoch FROM started_at), "
            "extract(epoch FROM finished_at) FROM job_occurrences WHERE run_id = ANY(%s)",
            (run_ids,),
        ).fetchall()
    return [(float(a), float(b), float(c)) for a, b, c in rows]


def _throughput(env: _Env, workers: int, runs: int, *, embedded: bool) -> dict[str, Any]:
    config, dsn = env.config(f"tp-{'a' if embedded else 'b'}-{workers}", embedded=embedded)
    from alina.config import load_config
    from alina.service.queue import submit

    cfg = load_config(config)

    async def enqueue() -> list[str]:
        return [await submit(cfg, TASK) for _ in range(runs)]

    # The runs wait in the queue first, so the rate is the workers' (from the first start to the
    # last finish), not how fast this process enqueues.
    run_ids = asyncio.run(enqueue())
    procs = [
        env.P.alina(
            "worker",
            config,
            WORK / f"w-{embedded}-{workers}-{i}.log",
            "--concurrency",
            "1",
            "--name",
            f"w{i}",
        )
        for i in range(workers)
    ]
    try:
        env.P.wait_runs_done(dsn, run_ids, timeout=3600)
        occ = _occurrences(dsn, run_ids)
        first = min(o[1] for o in occ)
        last = max(o[2] for o in occ)
        per_min = runs / (last - first) * 60
        waits = [o[1] - first for o in occ]  # from the moment the workers started taking runs
        walls = [o[2] - o[1] for o in occ]
        progress(f"{'embedded' if embedded else 'simulated'}: {workers} worker(s): {per_min:.1f} runs/min")
        return {
            "workers": workers,
            "runs": runs,
            "makespan_s": last - first,
            "runs_per_min": per_min,
            "queue_wait_s": waits,
            "run_wall_s": walls,
        }
    finally:
        for p in procs:
            p.term(60)


def _jitter(env: _Env, seconds: float) -> list[float]:
    import psycopg

    # a job shorter than its interval (order reconciliation: milliseconds), so what is measured
    # is the scheduler and the queue, not an occurrence waiting for the previous one's lock
    jobs = {"tick": {"kind": "reconcile", "every_s": 2}}
    config, dsn = env.config("jitter", embedded=False, jobs=jobs)
    serve = env.P.alina("serve", config, WORK / "serve-jitter.log", "--port", str(_free_port()))
    try:
        serve.wait_for(" ready: ", 180)
        time.sleep(seconds)
    finally:
        serve.term(60)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT extract(epoch FROM started_at - scheduled_for) FROM job_occurrences "
            "WHERE job_name = 'tick' AND started_at IS NOT NULL ORDER BY scheduled_for"
        ).fetchall()
    return [float(r[0]) for r in rows][1:]  # the first one is the start-up catch-up


def _overhead(env: _Env, reps: int) -> dict[str, Any]:
    """Idle worker: enqueue -> finished per job, against the same run called directly."""
    config, dsn = env.config("overhead", embedded=False)
    from alina.config import load_config
    from alina.service.queue import submit

    cfg = load_config(config)
    worker = env.P.alina("worker", config, WORK / "w-overhead.log", "--concurrency", "1")
    try:
        worker.wait_for(" ready: ", 180)
        queued: list[float] = []
        for _ in range(reps):
            run_id = asyncio.run(submit(cfg, TASK))
            env.P.wait_runs_done(dsn, [run_id], timeout=120)
            ((enq, _start, fin),) = _occurrences(dsn, [run_id])
            queued.append(fin - enq)
    finally:
        worker.term(60)

    async def bare() -> list[float]:
        from alina.cli import _team_session

        walls = []
        async with _team_session(cfg, live=False, on_event=None) as runner:
            for _ in range(reps):
                t0 = time.perf_counter()
                result = await runner.run(TASK)
                walls.append(time.perf_counter() - t0)
                assert result.status == "completed", result.error
        return walls

    direct = asyncio.run(bare())
    return {
        "job_latency_s": queued,
        "direct_run_s": direct,
        "overhead_s": statistics.median(queued) - statistics.median(direct),
    }


def run(reps: int = 3, quick: bool = False) -> Result:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    load_start = round(os.getloadavg()[0], 1)  # other processes on the machine compete for the cores
    env = _Env()
    sim_runs = 2 if quick else 4
    try:
        sim = [_throughput(env, w, sim_runs * w, embedded=False) for w in (1, 2, 4)]
        jitter = _jitter(env, 12 if quick else 24)
        overhead = _overhead(env, 3 if quick else 5)
        previous = os.environ.get("ALINA_BENCH_SERVE_EMBEDDED_FROM")  # reuse a slow part already measured
        if previous:
            emb = json.loads(Path(previous).read_text())["raw"]["embedded"]
        else:
            emb = [] if quick else [_throughput(env, w, w, embedded=True) for w in (1, 2, 4)]
    finally:
        env.close()
    base = sim[0]["runs_per_min"]
    scaling4 = sim[2]["runs_per_min"] / (4 * base)
    waits = [w for s in sim for w in s["queue_wait_s"]]
    rows: list[list[Any]] = []
    for label, series in (("simulated", sim), ("embedded", emb)):
        for s in series:
            rows.append(
                [
                    label,
                    s["workers"],
                    s["runs"],
                    s["runs_per_min"],
                    s["runs_per_min"] / (s["workers"] * series[0]["runs_per_min"]),
                    _pct(s["queue_wait_s"], 0.5),
                    _pct(s["queue_wait_s"], 0.95),
                    statistics.median(s["run_wall_s"]),
                ]
            )
    jitter_p95 = _pct(jitter, 0.95)
    return Result(
        name="serve",
        title="Serve and workers: throughput, queue wait, scheduling jitter, engine overhead",
        headers=[
            "model",
            "workers",
            "runs",
            "runs/min",
            "x linear",
            "queue wait p50 s",
            "p95 s",
            "run wall s",
        ],
        rows=rows,
        goals=[
            Goal("simulated: 4 workers vs 4x one worker", scaling4, 0.9),
            Goal("scheduling jitter p95 (s)", jitter_p95, 1.0, higher_is_better=False),
        ],
        raw={
            "simulated": sim,
            "embedded": emb,
            "jitter_s": jitter,
            "overhead": overhead,
            "queue_wait_all_s": waits,
        },
        params={
            "load_average_at_start": load_start,
            "model_latency_s": LATENCY_S,
            "runs_per_worker": sim_runs,
            "worker_concurrency": 1,
            "task": TASK,
        },
        notes=[
            f"queue wait over all simulated runs: p50 {_pct(waits, 0.5):.3f}s, p95 {_pct(waits, 0.95):.3f}s "
            "(every run is queued before the workers start, so it is mostly waiting for a free worker; "
            "an idle worker's pickup is in the engine overhead below)",
            f"scheduling jitter (started - scheduled, every 2 s): p50 {_pct(jitter, 0.5):.3f}s, "
            f"p95 {jitter_p95:.3f}s over {len(jitter)} occurrences",
            f"engine overhead per job (idle worker, enqueue -> finished, minus the direct run): "
            f"{overhead['overhead_s']:.3f}s; direct run median "
            f"{statistics.median(overhead['direct_run_s']):.3f}s",
            (
                "embedded part reused from an earlier run of this benchmark "
                "(ALINA_BENCH_SERVE_EMBEDDED_FROM); "
                if os.environ.get("ALINA_BENCH_SERVE_EMBEDDED_FROM")
                else ""
            )
            + "embedded: one SmolLM2 135M per worker process on this machine's CPUs (the cores, not the "
            "engine, bound it); answer check off and the response cache off in every part",
        ],
    )


if __name__ == "__main__":
    print(json.dumps(run(quick=True).to_json(), indent=1))
