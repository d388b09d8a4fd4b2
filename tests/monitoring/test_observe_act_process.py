"""Alert -> action -> clear on a real ``alina chat --metrics-port`` process.

The process's models are an OpenAI-compatible HTTP server in this test whose answers are slow
(past the client's timeout) or HTTP 500 while a fault is injected; the test drives the chat with
tasks, then watches only what an operator sees: ``/metrics``, ``/healthz``, the ``alerts`` and
``alert_actions`` tables, and ``alina alerts`` / ``alina status``. Deadlines bound the polling;
no timing is asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web

from alina.config import ORCHESTRATOR, SPECIALISTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEADLINE_S = 90.0
CAP = 3


class StubModel:
    """An OpenAI-compatible /v1/chat/completions: ``mode`` ok | slow (sleeps past any client
    timeout) | fail (HTTP 500)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def _chat(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if self.mode == "slow":
            await asyncio.sleep(30)
        if self.mode == "fail":
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        return web.json_response(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "stub"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "All fine."},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
            }
        )

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def stub() -> AsyncIterator[StubModel]:
    s = StubModel()
    await s.start()
    yield s
    await s.runner.cleanup()


def _config(tmp: Path, base: Path, dsn: str, stub_port: int) -> Path:
    doc = yaml.safe_load(base.read_text())
    doc["postgres"]["database"] = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    doc["models"] = {
        "stub": {
            "provider": "openai",
            "model": "stub",
            "base_url": f"http://127.0.0.1:{stub_port}/v1",
            "timeout_s": 0.5,
            "retries": 0,
        }
    }
    doc["agents"] = {name: {"model": "stub"} for name in (ORCHESTRATOR, *SPECIALISTS)}
    doc["memory"] = {"enabled": False}
    doc["cache"] = {"enabled": False}
    doc["team"] = {"max_concurrent_model_calls": CAP, "max_turns": 3, "check_answers": False}
    doc["alerts"] = {
        "interval_s": 0.2,
        "window_s": 10.0,
        "verify_cycles": 3,
        "rules": [
            {
                "name": "t_timeouts",
                "figure": "timeouts_per_min",
                "threshold": 5.0,
                "clear": 1.0,
                "for_s": 0.0,
                "action": "lower_concurrency",
            },
            {
                "name": "t_errors",
                "figure": "model_error_rate",
                "threshold": 0.5,
                "clear": 0.2,
                "for_s": 0.0,
                "severity": "critical",
                "action": "fallback_model",
            },
            {
                "name": "t_am",
                "figure": "rss_mb",
                "threshold": 1e7,
                "clear": 1e6,
                "action": "lower_concurrency",
            },
        ],
        "actions": {
            "lower_concurrency": {"limit": 1, "min_interval_s": 0.0},
            "fallback_model": {"approve": True, "min_interval_s": 0.0, "agents": [ORCHESTRATOR]},
        },
    }
    path = tmp / "observe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args or None).fetchall()


def _actions(dsn: str, rule: str) -> list[tuple[Any, ...]]:
    try:
        return _rows(dsn, "SELECT id, action, status FROM alert_actions WHERE rule = %s ORDER BY id", rule)
    except psycopg.errors.UndefinedTable:
        return []


def _status(dsn: str, action_id: int) -> str:
    return str(_rows(dsn, "SELECT status FROM alert_actions WHERE id = %s", action_id)[0][0])


async def _until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(0.3)
    raise AssertionError(f"not within {DEADLINE_S}s: {what}")


async def _alina(*args: str, config: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alina",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_injected_faults_raise_alerts_that_alina_acts_on_waits_for_approval_and_undoes(
    tmp_path: Path, alina_config_file: Path, fresh_pg_dsn: str, stub: StubModel, free_port: Callable[[], int]
) -> None:
    dsn, port = fresh_pg_dsn, free_port()
    config = _config(tmp_path, alina_config_file, dsn, stub.port)
    env = {**os.environ, "ALINA_ALLOW_MODEL_REQUESTS": "1"}
    env.pop("ALINA_CONFIG", None)
    chat = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alina",
        "chat",
        "--config",
        str(config),
        "--metrics-port",
        str(port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    assert chat.stdin is not None and chat.stdout is not None
    base = f"http://127.0.0.1:{port}"
    output: list[str] = []

    async def drain() -> None:
        assert chat.stdout is not None
        async for line in chat.stdout:
            output.append(line.decode(errors="replace"))

    reader = asyncio.create_task(drain())
    http = aiohttp.ClientSession()

    async def sample(name: str) -> list[float]:
        try:
            async with http.get(f"{base}/metrics") as r:
                text = await r.text()
        except aiohttp.ClientError:
            return []
        return [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]

    feeding = asyncio.Event()

    async def feed() -> None:  # a task for the chat every second while a fault is injected
        assert chat.stdin is not None
        while True:
            await feeding.wait()
            chat.stdin.write(b"What is the BTC/USDT price?\n")
            await chat.stdin.drain()
            await asyncio.sleep(1.0)

    feeder = asyncio.create_task(feed())

    try:
        await _until("ALINA ready", lambda: _ready(output))
        await _until(
            "the governor's cap is exported", lambda: _eq(sample("alina_governor_limit"), float(CAP))
        )

        # 1. slow model calls (past the timeout): timeouts and errors fire; concurrency goes down
        stub.mode = "slow"
        feeding.set()
        await _until("governor capped at 1", lambda: _eq(sample("alina_governor_limit"), 1.0))
        first = _actions(dsn, "t_timeouts")[0]
        assert first[1:] == ("lower_concurrency", "applied")
        pending_id, action, status = (
            await _until(
                "the error alert's action waits for approval",
                lambda: _sync(lambda: _actions(dsn, "t_errors")),
            )
        )[0]
        assert (action, status) == ("fallback_model", "pending")
        code, out, _ = await _alina("alerts", "list", "--waiting", "--json", config=config)
        listed = json.loads(out)
        assert code == 0 and {"id": pending_id, "status": "pending"}.items() <= listed["actions"][0].items()
        assert {"t_timeouts", "t_errors"} <= {a["kind"] for a in listed["open_alerts"]}
        code, out, _ = await _alina("alerts", "list", config=config)
        assert code == 0 and "fallback_model" in out and "alina alerts approve ID" in out

        # 2. an operator approves: the observer applies it on its next evaluation
        code, out, err = await _alina("alerts", "approve", str(pending_id), config=config)
        assert code == 0, err
        await _until("approved action applied", lambda: _sync(lambda: _status(dsn, pending_id) == "applied"))
        code, _, err = await _alina("alerts", "approve", str(pending_id), config=config)
        assert code == 1 and "not pending" in err
        code, out, _ = await _alina("status", "--json", config=config)
        assert [a["status"] for a in json.loads(out)["actions"]["items"] if a["id"] == pending_id] == [
            "applied"
        ]

        # 3. failing calls (HTTP 500) instead: the timeouts clear (cap restored), the errors hold
        stub.mode = "fail"
        await _until(
            "timeouts cleared, cap restored", lambda: _eq(sample("alina_governor_limit"), float(CAP))
        )
        assert _status(dsn, first[0]) == "undone"
        assert _status(dsn, pending_id) == "applied"

        # 4. the fault stops: the error rate recovers, the alert clears, the approved action is undone
        stub.mode = "ok"
        feeding.clear()
        await _until("errors cleared", lambda: _sync(lambda: _status(dsn, pending_id) == "undone"))
        open_test_alerts = (
            "SELECT count(*) FROM alerts WHERE kind IN ('t_timeouts', 't_errors') AND resolved_at IS NULL"
        )
        await _until("no open alert", lambda: _sync(lambda: _rows(dsn, open_test_alerts) == [(0,)]))

        # 5. Prometheus Alertmanager's webhook drives the same path on the running process
        async with http.post(f"{base}/alerts", json=_alertmanager("t_am", "firing")) as r:
            assert r.status == 200
        assert await sample("alina_governor_limit") == [1.0]
        [(source, resolved)] = _rows(
            dsn, "SELECT source, resolved_at IS NOT NULL FROM alerts WHERE kind = 't_am'"
        )
        assert (source, resolved) == ("alertmanager", False)
        async with http.post(f"{base}/alerts", json=_alertmanager("t_am", "resolved")) as r:
            assert r.status == 200
        assert await sample("alina_governor_limit") == [float(CAP)]
        assert [a[2] for a in _actions(dsn, "t_am")] == ["undone"]
        assert await sample("alina_alerts_firing") == [0.0, 0.0, 0.0]
        assert stub.calls > 0
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- alina chat output (end) ---\n{''.join(output)[-4000:]}") from None
    finally:
        feeder.cancel()
        await http.close()
        chat.stdin.close()
        try:
            await asyncio.wait_for(chat.wait(), 60)
        except TimeoutError:
            chat.kill()
            await chat.wait()
        reader.cancel()
    assert chat.returncode == 0, "".join(output)[-3000:]
    shown = "".join(output)  # the chat shows the alerts and what ALINA does about them
    assert "alert t_timeouts firing" in shown and "waits for approval" in shown


async def _ready(output: list[str]) -> bool:
    return any("ALINA ready" in line for line in output)


async def _eq(values: Any, want: float) -> bool:
    got = await values
    return bool(got) and all(v == want for v in got)


async def _sync(fn: Callable[[], Any]) -> Any:
    return fn()


def _alertmanager(rule: str, status: str) -> dict[str, Any]:
    """An Alertmanager (v0.2x) webhook body, as it POSTs to a webhook receiver."""
    alert = {
        "status": status,
        "labels": {"alertname": rule, "severity": "warning", "instance": "alina:9464", "job": "alina"},
        "annotations": {"summary": f"{rule} from the deployment's Prometheus"},
        "startsAt": "2026-12-07T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-07T06:05:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=alina%3Afigure%3Arss_mb",
        "fingerprint": "5f1e0c3a9b7d2e41",
    }
    return {
        "receiver": "alina",
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": rule},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{rule}"}}',
        "truncatedAlerts": 0,
    }
