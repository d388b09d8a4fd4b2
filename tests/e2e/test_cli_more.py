"""CLI commands around runs, memory, skills, backtests and live-trading refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli import TASK, alina

DATA = Path(__file__).resolve().parents[2] / "alina" / "trading" / "data" / "BTC_USDT-5m.json.gz"


@pytest.mark.slow
@pytest.mark.integration
def test_runs_list_and_show_and_tool_calls_recorded(alina_config_file: Path, pg_service) -> None:
    import psycopg

    done = alina("run", TASK, "--json", config=alina_config_file)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    run_id = result["run_id"]
    # ALINA's answer is checked against the reports: it carries the trend or the change, and the
    # health state (her own words when they passed, else the labelled digest of the reports)
    check, answer = result["answer_check"], result["answer"].lower()
    assert check["outcome"] in ("passed", "regenerated", "digest"), check
    assert any(w in answer for w in ("4.25", "4.3", "downtrend", "fell")), answer
    assert "healthy" in answer or "degraded" in answer, answer
    listed = json.loads(alina("runs", "list", "--json", config=alina_config_file).stdout)
    assert listed[0]["id"] == run_id and listed[0]["status"] == "completed" and listed[0]["task"] == TASK
    shown = json.loads(alina("runs", "show", run_id, "--json", config=alina_config_file).stdout)
    assert shown["id"] == run_id and len(shown["messages"]) >= 4
    scores = {(e["agent"], e["name"]) for e in shown["evaluations"]}
    assert {("alina", "answer_check"), ("trader", "output_check"), ("monitor", "output_check")} <= scores
    assert any(d["agent"] == "alina" and d["decision"].startswith("answer: ") for d in shown["decisions"])
    assert alina("runs", "show", "nope", config=alina_config_file).returncode == 2
    with psycopg.connect(pg_service.dsn) as conn:
        tools = conn.execute(
            "SELECT agent, tool, outcome FROM tool_calls WHERE run_id = %s ORDER BY id", (run_id,)
        ).fetchall()
    assert ("trader", "candle_summary", "ok") in tools and ("monitor", "system_health", "ok") in tools


@pytest.mark.integration
def test_memory_graph_command(alina_config_file: Path, pg_service) -> None:
    import asyncio

    from alina.memory_store import RunStore
    from alina.memory_store.graph import MemoryGraph

    async def seed() -> None:
        async with RunStore(pg_service.dsn) as store:
            await MemoryGraph(store).relate(
                ("agent", "trader"), "observed", ("asset", "ETH/USDT"), fact="flat"
            )

    asyncio.run(seed())
    p = alina("memory", "graph", "asset:ETH/USDT", config=alina_config_file)
    assert p.returncode == 0, p.stderr
    assert "agent:trader -observed-> asset:ETH/USDT: flat" in p.stdout
    assert alina("memory", "graph", "asset:NOPE", config=alina_config_file).returncode == 1


def test_skills_list_shows_builtin_and_trading_skills() -> None:
    p = alina("skills", "list", "--json")
    assert p.returncode == 0, p.stderr
    names = {s["name"] for s in json.loads(p.stdout)["skills"]}
    assert {"candle_summary", "system_health", "score_answer", "place_order", "balance"} <= names


def test_backtest_json_is_deterministic_and_bad_files_exit_2(tmp_path: Path) -> None:
    args = ("backtest", "--symbol", "BTC/USDT", "--data", str(DATA), "--strategy", "sma_cross", "--json")
    first, second = alina(*args), alina(*args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report == json.loads(second.stdout)
    assert report["data"]["candles"] == 10999 and report["trades"] > 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = alina("backtest", "--symbol", "BTC/USDT", "--data", str(bad), "--strategy", "sma_cross")
    assert p.returncode == 2 and "bad.json" in p.stderr


@pytest.mark.integration
def test_live_trading_without_all_three_opt_ins_is_refused(alina_config_file: Path) -> None:
    p = alina(
        "run",
        "What is my balance?",
        "--live",
        config=alina_config_file,
        env={"ALINA__TRADING__MODE": "paper"},
    )
    assert p.returncode == 2
    assert "live" in p.stderr.lower()


@pytest.mark.integration
def test_db_status_and_migrate_on_an_empty_database(tmp_path: Path, fresh_pg_dsn: str, free_port) -> None:
    import yaml
    from psycopg.conninfo import conninfo_to_dict

    from alina.memory_store.migrate import load_migrations

    params = conninfo_to_dict(fresh_pg_dsn)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(tmp_path / "data")},
                "postgres": {"port": int(params["port"]), "database": params["dbname"]},
            }
        )
    )
    names = [m.name for m in load_migrations()]

    before = alina("db", "status", "--json", config=cfg)
    assert before.returncode == 1, before.stderr  # pending migrations
    assert [(r["name"], r["applied_at"]) for r in json.loads(before.stdout)] == [(n, None) for n in names]

    applied = alina("db", "migrate", config=cfg)
    assert applied.returncode == 0, applied.stderr
    assert [line.split()[-1] for line in applied.stdout.splitlines()] == names
    again = alina("db", "migrate", config=cfg)
    assert again.returncode == 0 and "up to date" in again.stdout

    after = alina("db", "status", config=cfg)
    assert after.returncode == 0, after.stderr
    assert "PENDING" not in after.stdout and all(n in after.stdout for n in names)

    cfg.write_text(yaml.safe_dump({"postgres": {"port": free_port(), "connect_timeout_s": 2}}))
    down = alina("db", "migrate", config=cfg)
    assert down.returncode == 1
    assert "cannot reach Postgres" in down.stderr and "alina up" in down.stderr
    assert "Traceback" not in down.stderr


@pytest.mark.integration
def test_runs_show_adds_the_live_context_of_a_run_still_going(
    alina_config_file: Path, pg_service, redis_service
) -> None:
    """A run held by a live process: `runs show` adds Redis's turn, last speaker and the message
    Postgres does not have yet; once the process is gone it is `interrupted` and shows none."""
    import asyncio
    import uuid

    from alina.memory_store import RunStore
    from alina.memory_store.checkpoints import MessageRow
    from alina.memory_store.hot import HotState

    run_id = uuid.uuid4().hex

    def show(*extra: str) -> Any:
        return asyncio.to_thread(alina, "runs", "show", run_id, *extra, config=alina_config_file)

    async def scenario() -> tuple[Any, Any, Any]:
        async with RunStore(pg_service.dsn) as store:
            await store.create_run(run_id, "price, then health", {})
            await store.add_message(run_id, 1, "user", "TextMessage", "price, then health")
            hot = HotState(redis_service.url)
            try:
                await hot.set_run_status(run_id, "running", "price, then health")
                report = MessageRow(2, "trader", "ToolCallSummaryMessage", "BTC 21,925.7")
                await hot.record_turn(run_id, 1, [report])
                async with store.run_lock(run_id):  # this process "runs" it
                    shown, text = await show("--json"), await show()
            finally:
                await hot.close()
        after = await show("--json")
        return shown, text, after

    shown, text, after = asyncio.run(scenario())
    assert shown.returncode == 0, shown.stderr
    live = json.loads(shown.stdout)["live"]
    assert (live["turn"], live["last_speaker"]) == ("1", "trader")
    assert [(m["seq"], m["content"]) for m in live["recent"]] == [(2, "BTC 21,925.7")]
    assert "BTC 21,925.7  (live, not yet in Postgres)" in text.stdout and "last speaker trader" in text.stdout
    gone = json.loads(after.stdout)
    assert gone["interrupted"] and "live" not in gone
