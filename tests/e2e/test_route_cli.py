"""``alina route`` as a user runs it (a subprocess), and routing decisions landing in Postgres
after a real ``alina run`` on the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

NAMES = {"alina", "trader", "monitor", "optimizer"}
TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"


def route(stdin: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1"}
    env.pop("ALINA_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "alina", "route", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def snapshot(*messages: tuple[str, str]) -> str:
    return json.dumps([{"source": s, "content": c} for s, c in messages])


def test_route_prints_the_next_speaker_as_json() -> None:
    p = route(snapshot(("user", TASK), ("trader", "BTC/USDT ... trend downtrend")))
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"speaker": "monitor", "method": "rules", "confidence": 0.9}


def test_route_in_safe_mode_keeps_orders_from_the_trader() -> None:
    p = route(snapshot(("user", "Buy 0.01 BTC at market")), "--mode", "safe")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["speaker"] == "alina"
    assert json.loads(p.stdout)["method"] == "safe"


def test_route_uses_similarity_then_the_model_when_the_rules_are_unsure() -> None:
    p = route(snapshot(("user", "Something feels off today.")))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert set(out) == {"speaker", "method", "confidence"}
    assert out["speaker"] in NAMES
    # semantic: MiniLM's match was confident; model/fallback (the model named no candidate) if not
    assert out["method"] in ("semantic", "model", "fallback")


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        ("{not json", (), "not valid JSON"),
        ('[{"source": "bob", "content": "hi"}]', (), "unknown source 'bob'"),
        ("[]", (), "empty"),
        ('{"source": "user", "content": "hi"}', (), "JSON list"),
        ('[{"source": "user", "content": "hi"}]', ("--mode", "risky"), "--mode"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(stdin: str, args: tuple[str, ...], message: str) -> None:
    p = route(stdin, *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr
    assert p.stdout == ""


@pytest.mark.slow
def test_a_real_run_records_its_routing_decisions_in_postgres(alina_config_file: Path, pg_service) -> None:
    env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1"}
    env.pop("ALINA_CONFIG", None)
    p = subprocess.run(
        [sys.executable, "-m", "alina", "run", TASK, "--json", "--config", str(alina_config_file)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [d["speaker"] for d in out["routing"]] == ["trader", "monitor", "alina"]
    with psycopg.connect(pg_service.dsn) as conn:
        rows = conn.execute(
            "SELECT seq, speaker, method, confidence, candidates, reason FROM routing_decisions "
            "WHERE run_id = %s ORDER BY seq",
            (out["run_id"],),
        ).fetchall()
    assert [r[0] for r in rows] == list(range(1, len(out["routing"]) + 1))
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (d["speaker"], d["method"], d["confidence"], list(d["candidates"]), d["reason"])
        for d in out["routing"]
    ]
