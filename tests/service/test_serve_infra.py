"""The queue on infrastructure that fails or spreads: Postgres restarted under a running serve,
and workers on other "machines" (network namespaces of this test, joined by veth pairs to a
bridge) reaching Postgres and Redis over that network, each with its own model server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from alina.runtime.services import PostgresService
from tests.service import _procs as P

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def procs() -> Any:
    started: list[P.Proc] = []
    yield started
    for p in started:
        p.kill()


class _Pg:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port


def test_postgres_restarted_under_a_running_serve_runs_resume(
    infra_root: Path, tmp_path: Path, redis_service: Any, free_port: Any, procs: list[P.Proc]
) -> None:
    pg = PostgresService(data_dir=infra_root / f"pg-restart-{os.getpid()}", port=free_port(), fast=True)
    pg.start()
    try:
        sim, url = P.start_sim(tmp_path, 0.5)
        procs.append(sim)
        config = P.write_config(
            tmp_path / "config.yaml",
            pg=_Pg(pg.host, pg.port),
            redis_host=redis_service.host,
            redis_port=redis_service.port,
            sim_url=url,
            data=tmp_path / "data",
        )
        serve = P.alina("serve", config, tmp_path / "serve.log", "--port", "0")
        procs.append(serve)
        serve.wait_for(" ready: ", 90)
        run_ids = [P.submit(config) for _ in range(4)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the runs are under way
            with psycopg.connect(pg.dsn) as conn:
                row = conn.execute("SELECT count(*) FROM runs").fetchone()
            if row and row[0] >= 2:
                break
            time.sleep(0.2)
        pg.stop()
        time.sleep(3)
        pg.start()
        P.wait_runs_done(pg.dsn, run_ids, timeout=180)
        totals = P.check_runs_exactly_once(pg.dsn, run_ids)
        assert serve.alive(), serve.text()[-3000:]
        assert "queue " in serve.text() and "failed" in serve.text()  # it saw the outage
        assert serve.term(30) == 0
        print(json.dumps(totals))
    finally:
        pg.stop()


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns() -> Any:
    """A bridge 10.231.N.1/24 on this host and two namespaces at .11 and .12, one veth each."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 (ip netns)")
    n = os.getpid() % 200 + 20
    tag = f"{os.getpid() % 100000}"
    bridge, names = f"albr{tag}", [f"alns{tag}a", f"alns{tag}b"]
    _sh("ip", "link", "add", bridge, "type", "bridge")
    try:
        _sh("ip", "addr", "add", f"10.231.{n}.1/24", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        for i, ns in enumerate(names):
            host_end, ns_end = f"alv{tag}{i}h", f"alv{tag}{i}n"
            _sh("ip", "netns", "add", ns)
            _sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            _sh("ip", "link", "set", host_end, "master", bridge)
            _sh("ip", "link", "set", host_end, "up")
            _sh("ip", "link", "set", ns_end, "netns", ns)
            _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.231.{n}.{11 + i}/24", "dev", ns_end)
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up")
            _sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield f"10.231.{n}", names
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def test_workers_on_two_network_namespaces_share_the_queue_over_the_network(
    infra_root: Path, tmp_path: Path, free_port: Any, netns: Any, procs: list[P.Proc]
) -> None:
    net, names = netns
    host = f"{net}.1"
    # Postgres and Redis listen on the bridge address only: nothing can reach them over loopback.
    data = infra_root / f"pg-netns-{os.getpid()}"
    port = free_port()
    local = PostgresService(data_dir=data, port=port, fast=True)
    local.start()
    local.stop()
    with (data / "pg_hba.conf").open("a") as f:
        f.write(f"host all all {net}.0/24 trust\n")
    pg = PostgresService(data_dir=data, port=port, host=host, fast=True)
    pg.start()
    # Redis 7 answers only loopback clients without a password unless protected mode is off
    # (a deployment sets a password or protected-mode no, see README): started by hand here.
    redis = _Pg(host, free_port())
    rdir = infra_root / f"redis-netns-{os.getpid()}"
    rdir.mkdir()
    _sh(
        "redis-server",
        "--port",
        str(redis.port),
        "--bind",
        host,
        "--protected-mode",
        "no",
        "--daemonize",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(rdir),
        "--pidfile",
        str(rdir / "redis.pid"),
    )
    try:
        hsim, hurl = P.start_sim(tmp_path, 0.3, host=host)
        procs.append(hsim)
        serve_cfg = P.write_config(
            tmp_path / "serve.yaml",
            pg=_Pg(host, port),
            redis_host=host,
            redis_port=redis.port,
            sim_url=hurl,
            data=tmp_path / "data",
            # the scheduler works its own queue here, so the submitted runs go to the two
            # namespaces' workers (2 slots each for 6 runs: both are busy from the start)
            serve={"queue": "scheduler"},
        )
        workers, sims = [], []
        for i, ns in enumerate(names):
            # each worker names its own model server (here: one inside its own namespace)
            sim, url = P.start_sim(tmp_path, 0.5, host=f"{net}.{11 + i}", netns=ns)
            procs.append(sim)
            sims.append(url)
            cfg = P.write_config(
                tmp_path / f"worker-{i}.yaml",
                pg=_Pg(host, port),
                redis_host=host,
                redis_port=redis.port,
                sim_url=url,
                data=tmp_path / f"data-{i}",
            )
            workers.append(cfg)
        serve = P.alina("serve", serve_cfg, tmp_path / "serve.log", "--port", "0", "--concurrency", "1")
        procs.append(serve)
        serve.wait_for(" ready: ", 120)  # (the queue's tables exist)
        # queued before any worker starts (one `alina submit` takes seconds: submitted one by one
        # to running workers, the first runs would be over before the kills)
        run_ids = [P.submit(workers[0]) for _ in range(6)]
        live = {}
        for i, ns in enumerate(names):
            live[i] = P.alina("worker", workers[i], tmp_path / f"w{i}-1.log", "--name", ns, netns=ns)
            procs.append(live[i])
        for p in live.values():
            p.wait_for(" ready: ", 120)
        kills = 0
        for i, ns in enumerate(names):  # a machine dies mid-run; another one (or it, back) resumes
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # kill it while it holds a run with a saved turn
                with psycopg.connect(pg.dsn) as conn:
                    row = conn.execute(
                        "SELECT count(*) FROM job_occurrences o WHERE worker = %s AND status = 'running' "
                        "AND EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = o.run_id) "
                        "AND EXISTS (SELECT 1 FROM runs r WHERE r.id = o.run_id AND r.status = 'running')",
                        (ns,),
                    ).fetchone()
                if row and row[0]:
                    break
                time.sleep(0.05)
            live[i].kill()
            kills += 1
            live[i] = P.alina("worker", workers[i], tmp_path / f"w{i}-2.log", "--name", ns, netns=ns)
            procs.append(live[i])
        P.wait_runs_done(pg.dsn, run_ids, timeout=240)
        totals = P.check_runs_exactly_once(pg.dsn, run_ids)
        with psycopg.connect(pg.dsn) as conn:
            where = {
                r[0]
                for r in conn.execute(
                    "SELECT worker FROM job_occurrences WHERE run_id = ANY(%s)", (run_ids,)
                ).fetchall()
            }
        # a run killed on one machine may finish anywhere; at least one ran to its end in a
        # namespace, and both namespaces' workers worked (their own model servers were called)
        assert where & set(names), f"runs finished on {where}"
        for url in sims:  # the workers used their own model servers
            with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as r:
                assert json.loads(r.read())["requests"] > 0
        print(json.dumps({"kills": kills, **totals, "workers": sorted(where)}))
        assert totals["resumes"] >= 1, "a killed worker's run was resumed elsewhere"
        for p in [serve, *live.values()]:
            assert p.term(30) == 0
    finally:
        subprocess.run(
            ["redis-cli", "-h", host, "-p", str(redis.port), "shutdown", "nosave"], capture_output=True
        )
        pg.stop()
