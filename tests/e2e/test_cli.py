"""The CLI end to end, as a user runs it: real embedded model, real Postgres and Redis.

``alina`` runs in a subprocess with a config pointing at the session's servers, so exit codes,
stdout/stderr separation and the recorded run are all checked for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"


def alina(
    *args: str, config: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1", **(env or {})}
    full_env.pop("ALINA_CONFIG", None)
    cmd = [sys.executable, "-m", "alina", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.mark.slow
@pytest.mark.integration
def test_run_json_completes_with_specialist_tool_calls_and_is_recorded(
    alina_config_file: Path, pg_service
) -> None:
    # Cache off: every call must reach the model here (the cache has its own test below).
    p = alina("run", TASK, "--json", config=alina_config_file, env={"ALINA__CACHE__ENABLED": "false"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # stdout holds exactly one JSON object
    assert out["status"] == "completed"
    assert out["turns"] >= 3
    assert out["model_calls"] >= 3
    assert out["tokens"]["prompt"] > 0 and out["tokens"]["completion"] > 0
    assert out["wall_s"] > 0
    tool_results = [m for m in out["messages"] if m["type"] == "ToolCallExecutionEvent"]
    assert {m["source"] for m in tool_results} >= {"trader", "monitor"}
    trader = next(m["content"] for m in tool_results if m["source"] == "trader")
    assert "BTC/USDT" in trader and "error" not in trader.lower()
    assert out["messages"][-1]["source"] == "alina"
    with psycopg.connect(pg_service.dsn) as conn:
        run = conn.execute(
            "SELECT status, turns, tool_calls, model_calls FROM runs WHERE id = %s", (out["run_id"],)
        ).fetchone()
        rows = conn.execute(
            "SELECT seq, source, type, content FROM messages WHERE run_id = %s ORDER BY seq", (out["run_id"],)
        ).fetchall()
    assert run == ("completed", out["turns"], out["tool_calls"], out["model_calls"])
    assert [(r[1], r[2], r[3]) for r in rows] == [
        (m["source"], m["type"], m["content"]) for m in out["messages"]
    ]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))


@pytest.mark.slow
@pytest.mark.integration
def test_run_streams_the_conversation_and_a_summary(alina_config_file: Path) -> None:
    p = alina("run", TASK, "--explain-routing", config=alina_config_file)
    assert p.returncode == 0, p.stderr
    assert "trader calls tool" in p.stdout and "monitor tool result" in p.stdout
    assert "route -> trader by rules" in p.stdout
    assert "completed run" in p.stdout and "model calls" in p.stdout


@pytest.mark.integration
def test_run_without_postgres_fails_clearly(tmp_path: Path, free_port) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"postgres": {"port": free_port(), "connect_timeout_s": 2}}))
    p = alina("run", TASK, config=cfg, timeout=120)
    assert p.returncode == 1
    assert "alina up" in p.stderr


def test_config_check_ok() -> None:
    p = alina("config", "check")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ok")


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("team:\n  max_turns: -3\n", "team.max_turns:"),
        (
            "models:\n  embedded:\n    provider: llamacpp\n    temprature: 0.2\n",
            "models.embedded.temprature: unknown field",
        ),
        (
            "agents:\n  alina: {}\n  trader: {model: big}\n  monitor: {}\n  optimizer: {}\n",
            "agents.trader.model:",
        ),
        ("redis: {port: not-a-port}\n", "redis.port:"),
        ("team: [unclosed\n", "(file): not valid YAML"),
    ],
)
def test_broken_configs_exit_2_naming_the_field(tmp_path: Path, content: str, field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    for args in (
        ("config", "check", str(path)),
        ("run", "x", "--config", str(path)),
        ("up", "--config", str(path)),
    ):
        p = alina(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert field in p.stderr, p.stderr
        assert "Nothing was started" in p.stderr


def test_bad_arguments_exit_2() -> None:
    assert alina("run").returncode == 2
    assert alina("run", "x", "--max-turns", "0").returncode == 2
    p = alina("run", "   ")
    assert p.returncode == 2 and "TASK is empty" in p.stderr


def test_env_override_bad_value_exits_2() -> None:
    p = alina("config", "check", env={"ALINA__TEAM__MAX_TURNS": "many"})
    assert p.returncode == 2 and "team.max_turns" in p.stderr


@pytest.mark.integration
def test_doctor_all_ok_with_services_up(alina_config_file: Path) -> None:
    p = alina("doctor", "--json", config=alina_config_file)
    checks = json.loads(p.stdout)
    assert p.returncode == 0, checks
    assert {c["name"]: c["ok"] for c in checks} == {
        "model": True,
        "postgres": True,
        "redis": True,
        "disk": True,
    }


@pytest.mark.integration
def test_doctor_reports_a_fix_for_each_failure(tmp_path: Path, free_port) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"postgres": {"port": free_port()}, "redis": {"port": free_port()}}))
    p = alina("doctor", "--json", config=cfg)
    assert p.returncode == 1
    failed = {c["name"]: c for c in json.loads(p.stdout) if not c["ok"]}
    assert set(failed) == {"postgres", "redis"}
    assert all("alina up" in c["fix"] for c in failed.values())
    table = alina("doctor", config=cfg)
    assert table.returncode == 1 and "FAIL" in table.stdout


@pytest.mark.integration
def test_up_and_down_are_idempotent_and_report_a_taken_port(
    tmp_path: Path, infra_root: Path, free_port, pg_service
) -> None:
    data = infra_root / "updown"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(data)},
                "postgres": {"port": free_port()},
                "redis": {"port": free_port()},
            }
        )
    )
    try:
        first = alina("up", config=cfg)
        assert first.returncode == 0, first.stderr
        assert "started" in first.stdout and "applied 0001" in first.stdout
        again = alina("up", config=cfg)
        assert again.returncode == 0 and again.stdout.count("already running") == 2
        assert "up to date" in again.stdout
    finally:
        assert alina("down", config=cfg).returncode == 0
    assert alina("down", config=cfg).stdout.count("not running") == 2
    taken = tmp_path / "taken.yaml"
    taken.write_text(
        yaml.safe_dump({"paths": {"data_dir": str(data)}, "postgres": {"port": pg_service.port}})
    )
    p = alina("up", config=taken)
    assert p.returncode == 1
    assert str(pg_service.port) in p.stderr and "postgres.port" in p.stderr


@pytest.mark.slow
@pytest.mark.integration
def test_run_continues_when_redis_is_down(tmp_path: Path, pg_service, free_port) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"postgres": {"port": pg_service.port}, "redis": {"port": free_port()}}))
    p = alina("run", TASK, "--json", config=cfg)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "completed"


@pytest.mark.slow
@pytest.mark.integration
def test_chat_takes_tasks_and_follow_ups_until_quit(alina_config_file: Path, pg_service) -> None:
    full_env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "alina", "chat", "--config", str(alina_config_file)],
        input="What is the BTC/USDT price?\nAnd the trend over the last day?\n/quit\n",
        capture_output=True,
        text=True,
        timeout=600,
        env=full_env,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("completed ·") == 2  # the chat's one-line summary per task
    assert "get_price" in p.stdout and "candle_summary" in p.stdout
    with psycopg.connect(pg_service.dsn) as conn:
        tasks = [r[0] for r in conn.execute("SELECT task FROM runs ORDER BY started_at DESC LIMIT 2")]
    assert tasks == ["And the trend over the last day?", "What is the BTC/USDT price?"]


@pytest.mark.integration
def test_chat_without_postgres_fails_before_the_prompt(tmp_path: Path, free_port) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"postgres": {"port": free_port(), "connect_timeout_s": 2}}))
    p = alina("chat", config=cfg, timeout=60)
    assert p.returncode == 1 and "alina up" in p.stderr


@pytest.mark.integration
def test_chat_ends_on_ctrl_d(alina_config_file: Path) -> None:
    full_env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "alina", "chat", "--config", str(alina_config_file)],
        input="",
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )
    assert p.returncode == 0, p.stderr
    assert "ALINA ready" in p.stdout and "completed ·" not in p.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_a_repeated_run_is_answered_partly_from_the_response_cache(alina_config_file: Path) -> None:
    # Memory off: with it, the second run's prompts carry what the first one left (its outcome
    # is retrieved), so they differ from the first run's and rightly miss the cache.
    env = {"ALINA__MEMORY__ENABLED": "false"}
    runs = [
        json.loads(alina("run", TASK, "--json", config=alina_config_file, env=env).stdout) for _ in range(2)
    ]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert runs[1]["cached_calls"] >= 1
    assert runs[1]["model_calls"] + runs[1]["cached_calls"] >= 3
