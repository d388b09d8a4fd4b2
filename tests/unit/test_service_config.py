"""`serve:` and `jobs:` of config.yaml, and how the schedule is handed to the job engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from alina.config import AlinaConfig, ConfigError, load_config
from alina.service.queue import SCHEDULED, TEAM_RUN, build_app, occurrence_run_id
from alina.settings.service import PRIORITY_RANK, JobConfig, interval_cron, jobs_problems


def test_intervals_become_cron_expressions_and_uneven_ones_are_refused() -> None:
    assert interval_cron(10) == "* * * * * */10"
    assert interval_cron(300) == "*/5 * * * *"
    assert interval_cron(21600) == "0 */6 * * *"
    assert interval_cron(86400) == "0 0 * * *"
    with pytest.raises(ValueError, match="divide a minute, an hour or a day"):
        interval_cron(45)


def test_the_default_schedule_holds_the_hourly_optimizer_review_reconciliation_and_retention() -> None:
    cfg = AlinaConfig()
    assert cfg.jobs["optimizer_review"].kind == "review"
    assert cfg.jobs["optimizer_review"].cron_expression() == "0 * * * *"
    assert cfg.jobs["order_reconcile"].kind == "reconcile"
    assert cfg.jobs["retention"].kind == "retention"
    app = build_app(cfg)
    periodic = app.periodic_registry.periodic_tasks
    assert set(periodic) == {(SCHEDULED, name) for name in cfg.jobs}
    review = periodic[(SCHEDULED, "optimizer_review")]
    assert review.cron == "0 * * * *"
    opts = review.configure_kwargs
    assert (opts["lock"], opts["queueing_lock"]) == ("job:optimizer_review", "job:optimizer_review")
    assert opts["priority"] == PRIORITY_RANK["optimization"] < PRIORITY_RANK["trading"]
    assert {TEAM_RUN, SCHEDULED} <= set(app.tasks)


def test_disabled_jobs_are_not_scheduled_and_workers_schedule_nothing() -> None:
    cfg = AlinaConfig(jobs={"a": JobConfig(kind="retention", every_s=60, enabled=False)})
    assert build_app(cfg).periodic_registry.periodic_tasks == {}
    assert build_app(AlinaConfig(), schedule=False).periodic_registry.periodic_tasks == {}


def test_an_occurrence_has_one_run_id_on_every_attempt_and_process() -> None:
    assert occurrence_run_id("tick", 1_800_000_000) == occurrence_run_id("tick", 1_800_000_000)
    assert occurrence_run_id("tick", 1_800_000_000) != occurrence_run_id("tick", 1_800_000_002)
    assert len(occurrence_run_id("tick", 1)) == 32


def test_bad_jobs_are_reported_with_their_path(tmp_path: Path) -> None:
    problems = jobs_problems(
        {
            "both": JobConfig(kind="retention", cron="* * * * *", every_s=60),
            "neither": JobConfig(kind="retention"),
            "badcron": JobConfig(kind="retention", cron="every hour"),
            "uneven": JobConfig(kind="retention", every_s=45),
            "notask": JobConfig(kind="team", every_s=60),
            "models": JobConfig(
                kind="team", every_s=60, task="x", models={"trader": "nope", "bob": "embedded"}
            ),
            "review": JobConfig(kind="review", every_s=60, task="x"),
        },
        {"embedded"},
        {"alina", "trader"},
    )
    text = "\n".join(problems)
    for line in (
        "jobs.both: give exactly one of cron or every_s",
        "jobs.neither: give exactly one",
        "jobs.badcron.cron: not a valid cron expression",
        "jobs.uneven.every_s: must divide",
        "jobs.notask.task: a team job needs the task text",
        "jobs.models.models.trader: no model",
        "jobs.models.models.bob: unknown agent",
        "jobs.review: task, models and mode are for team jobs",
    ):
        assert line in text, text
    path = tmp_path / "c.yaml"
    path.write_text("jobs:\n  x:\n    kind: team\n    every_s: 45\n    task: hi\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert any(p.startswith("jobs.x.every_s: must divide") for p in err.value.problems)
    path.write_text("serve:\n  heartbeat_s: 20\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert any(
        p.startswith("serve: Value error, stalled_after_s must be at least twice") for p in err.value.problems
    )


async def test_order_reconciliation_runs_on_the_desk_of_the_application_it_serves() -> None:
    from types import SimpleNamespace

    from alina.service.daemon import Service
    from alina.skills.bindings import bind_desk
    from alina.skills.trading import NoDeskError
    from alina.trading.config import TradingConfig
    from alina.trading.desk import open_desk

    desk = await open_desk(TradingConfig())
    seen: list[str] = []
    original = desk.start

    async def start() -> dict[str, int]:
        seen.append("reconciled")
        return await original()

    desk.start = start  # type: ignore[method-assign]
    svc = Service(AlinaConfig(), app=None, template=SimpleNamespace(sink=None, modes=None), name="t")  # type: ignore[arg-type]
    with bind_desk(desk):
        assert await svc.reconcile_orders() == {"placed": 0, "not_placed": 0, "still_open": 0}
    assert seen == ["reconciled"]
    with pytest.raises(NoDeskError):  # never a fresh, empty desk of its own
        await svc.reconcile_orders()
    await desk.close()


def test_the_cli_choices_are_the_settings_names() -> None:
    from typing import get_args

    from alina.settings.agents import ORCHESTRATOR, SPECIALISTS, AgentName
    from alina.settings.memory import KINDS, Kind
    from alina.settings.service import QueuePriority

    assert get_args(AgentName) == (ORCHESTRATOR, *SPECIALISTS)
    assert get_args(Kind) == KINDS
    assert set(get_args(QueuePriority)) == set(PRIORITY_RANK)
