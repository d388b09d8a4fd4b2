"""The queue's bookkeeping on real Postgres: the schema made by Procrastinate's own tooling
(once, however many processes start), submit, run-now, and what a scheduled occurrence does when
it is late, paused, halted, or already done."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from procrastinate import exceptions as pexc

from alina.config import AlinaConfig
from alina.service.jobs import Occurrences, scheduled
from alina.service.queue import build_app, ensure_schema, occurrence_run_id, run_now, submit
from alina.settings.service import JobConfig

pytestmark = pytest.mark.integration


def _config(dsn: str, jobs: dict[str, JobConfig] | None = None) -> AlinaConfig:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    cfg = AlinaConfig(jobs=jobs or {})
    cfg.postgres.port = int(info["port"])
    cfg.postgres.database = str(info["dbname"])
    return cfg


class _Service:
    def __init__(self, cfg: AlinaConfig) -> None:
        self.config = cfg
        self.occurrences = Occurrences(cfg.postgres.dsn())
        self.name = "test:1"
        self.modes = SimpleNamespace(current="normal")
        self.ran: list[str] = []

    async def run_team(self, run_id: str, task: str, *, mode: str, models: dict[str, str]) -> str:
        self.ran.append(run_id)
        return "completed"

    async def reconcile_orders(self) -> dict[str, int]:
        self.ran.append("reconcile")
        return {"placed": 0, "not_placed": 0, "still_open": 0}


def _ctx(svc: _Service) -> Any:
    return SimpleNamespace(additional_context={"service": svc}, job=SimpleNamespace(id=1))


async def test_the_queue_schema_is_created_once_by_concurrent_starts(fresh_pg_dsn: str) -> None:
    cfg = _config(fresh_pg_dsn)
    apps = [build_app(cfg), build_app(cfg)]
    for app in apps:
        await app.open_async()
    try:
        created = await asyncio.gather(*(ensure_schema(app, fresh_pg_dsn) for app in apps))
        assert sorted(created) == [False, True]
        assert await ensure_schema(apps[0], fresh_pg_dsn) is False
    finally:
        for app in apps:
            await app.close_async()
    with psycopg.connect(fresh_pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone() == (True,)
        assert conn.execute("SELECT to_regclass('job_occurrences') IS NOT NULL").fetchone() == (True,)


async def test_submit_enqueues_a_run_and_returns_its_id_at_once(
    fresh_pg_dsn: str, redis_service: Any, tmp_path: Any
) -> None:
    cfg = _config(fresh_pg_dsn)
    run_id = await submit(cfg, "Is the system healthy?", priority="trading")
    with pytest.raises(ValueError, match="priority must be one of"):
        await submit(cfg, "x", priority="urgent")
    with pytest.raises(ValueError, match="task is empty"):
        await submit(cfg, "  ")
    down = _config(fresh_pg_dsn)
    down.postgres.port = 1
    with pytest.raises(psycopg.OperationalError):  # at once, not after the pool's 30 s
        await submit(down, "x")
    occ = await Occurrences(fresh_pg_dsn).by_run(run_id)
    assert occ is not None and (occ["job"], occ["status"], occ["priority"]) == ("submit", "queued", "trading")
    with psycopg.connect(fresh_pg_dsn) as conn:
        job = conn.execute(
            "SELECT task_name, status, priority, args->>'run_id' FROM procrastinate_jobs"
        ).fetchone()
    assert job == ("alina.team_run", "todo", 30, run_id)
    # `alina runs show ID` follows it from the moment it is queued
    import subprocess
    import sys

    import yaml

    path = tmp_path / "c.yaml"
    pg = {"port": cfg.postgres.port, "database": cfg.postgres.database}
    path.write_text(yaml.safe_dump({"postgres": pg, "redis": {"port": redis_service.port}}))
    cmd = [sys.executable, "-m", "alina", "runs", "show", run_id, "--json", "--config", str(path)]
    shown = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "queued"


async def test_run_now_enqueues_one_occurrence_and_refuses_a_second_while_one_waits(
    fresh_pg_dsn: str,
) -> None:
    cfg = _config(fresh_pg_dsn, {"sweep": JobConfig(kind="retention", every_s=300)})
    await run_now(cfg, "sweep")
    with pytest.raises(pexc.AlreadyEnqueued):
        await run_now(cfg, "sweep")
    with pytest.raises(KeyError):
        await run_now(cfg, "nope")


async def test_an_occurrence_runs_once_whoever_picks_it_up_again(fresh_pg_dsn: str) -> None:
    cfg = _config(fresh_pg_dsn, {"tick": JobConfig(kind="team", every_s=60, task="Is the system healthy?")})
    app = build_app(cfg)
    async with app.open_async():
        await ensure_schema(app, fresh_pg_dsn)
    svc = _Service(cfg)
    stamp = int(dt.datetime.now(dt.UTC).timestamp())
    first = await scheduled(_ctx(svc), stamp, "tick")
    again = await scheduled(_ctx(svc), stamp, "tick")
    assert first.endswith("completed") and "already succeeded" in again
    assert svc.ran == [occurrence_run_id("tick", stamp)]
    with psycopg.connect(fresh_pg_dsn) as conn:
        rows = conn.execute("SELECT status, run_id, attempts FROM job_occurrences").fetchall()
    assert rows == [("succeeded", occurrence_run_id("tick", stamp), 1)]


async def test_late_paused_and_halted_occurrences_are_skipped_and_recorded(fresh_pg_dsn: str) -> None:
    jobs = {
        "strict": JobConfig(kind="team", every_s=60, task="t", misfire="skip"),
        "lenient": JobConfig(kind="team", every_s=60, task="t", misfire="once"),
        "sweep": JobConfig(kind="reconcile", every_s=60),
    }
    cfg = _config(fresh_pg_dsn, jobs)
    app = build_app(cfg)
    async with app.open_async():
        await ensure_schema(app, fresh_pg_dsn)
    svc = _Service(cfg)
    late = int(dt.datetime.now(dt.UTC).timestamp()) - 3600  # an hour late (misfire_grace_s 60)
    assert (await scheduled(_ctx(svc), late, "strict")).startswith("misfire: started")
    assert (await scheduled(_ctx(svc), late, "lenient")).endswith("completed")
    await svc.occurrences.set_paused("sweep", True, "op")
    now = int(dt.datetime.now(dt.UTC).timestamp())
    assert await scheduled(_ctx(svc), now, "sweep") == "paused"
    assert "order intents" in await scheduled(
        _ctx(svc), now + 1, "sweep", manual=True
    )  # `jobs run` still runs
    await svc.occurrences.set_paused("sweep", False, "op")
    svc.modes.current = "halt"
    assert "halted" in await scheduled(_ctx(svc), now, "lenient")
    assert svc.ran == [occurrence_run_id("lenient", late), "reconcile"]
    summary = await svc.occurrences.summary()
    assert summary["strict"]["last"]["status"] == "skipped"
    assert summary["sweep"]["paused"] is False


async def test_serve_enqueues_runs_left_interrupted_outside_the_queue_once(fresh_pg_dsn: str) -> None:
    from alina.memory_store import RunStore
    from alina.memory_store.runs import RunTotals
    from alina.service.daemon import Service

    cfg = _config(fresh_pg_dsn)
    async with RunStore(fresh_pg_dsn) as store:
        await store.create_run("killed-cli-run", "Is the system healthy?", {})  # `alina run`, then SIGKILL
        await store.create_run("finished", "x", {})
        await store.finish_run("finished", RunTotals("completed", 1, 1, 0, 1, 1, 0.1))
    app = build_app(cfg, schedule=False)
    async with app.open_async():
        await ensure_schema(app, fresh_pg_dsn)
        svc = Service.__new__(Service)  # only what resume_orphans needs: config and the queue
        svc.config, svc.app = cfg, app
        assert await svc.resume_orphans() == 1
        assert await svc.resume_orphans() == 0  # a second serve (or the next round) finds it taken
    with psycopg.connect(fresh_pg_dsn) as conn:
        jobs = conn.execute("SELECT task_name, args->>'run_id' FROM procrastinate_jobs").fetchall()
    assert jobs == [("alina.team_run", "killed-cli-run")]
