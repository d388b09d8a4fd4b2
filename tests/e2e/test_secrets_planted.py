"""Planted secrets never appear: not on screen, in logs, Postgres, Redis, Chroma or /metrics.

Every marker below holds ``PLANTED`` or ``PLNT``; after the scenario no place may contain either.
Kinds of secret planted:

1. config values under wrong keys: a long key under ``models.embedded.api_key``, a short one
   under a misspelt ``pasword``, a key-shaped value in a field of the wrong type;
2. env overrides carrying secrets (``ALINA__MODELS__EMBEDDED__API_KEY``, ``ALINA__POSTGRES__PASSWORD``);
3. keys (and a key-shaped env-var name) where ``*_env`` names belong;
4. tool arguments: a folder-plugin skill called by a scripted trader with ``api_key``, ``password``
   and a key-shaped value under an innocent name, whose result text carries a key too;
5. an exchange error text carrying keys (``apiKey=`` in the URL, a key-shaped token, the
   configured live key) returned by a live desk on a canned Binance;
6. a key in the task, in ALINA's answer, in an operational event payload, in a log message and
   in a model response offered to the response cache.

The team run is in-process (scripted models, real Postgres, Redis, Chroma on disk with a fake
embedder, the graph); the CLI runs in subprocesses (``config check``, ``runs show``, ``runs list``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import ccxt
import numpy as np
import psycopg
import pytest
import redis
import yaml
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from prometheus_client import generate_latest
from psycopg import sql

from alina.cli import _print_json
from alina.config import AlinaConfig, load_config
from alina.memory_store import RunStore
from alina.memory_store.graph import MemoryGraph
from alina.memory_store.hot import HotState
from alina.memory_store.vector import VectorConfig, VectorMemory
from alina.memory_store.writer import EventWriter
from alina.models import ResilientClient
from alina.models._cache import ResponseCache
from alina.monitoring.metrics import REGISTRY
from alina.skills.bindings import SkillBindings, bind_desk, bind_skills
from alina.skills.loader import SkillLoader
from alina.skills.recorder import PostgresToolCallRecorder, run_scope
from alina.team import RunMemoryWriter, TeamRunner
from alina.trading.desk import open_desk
from alina.trading.intents import PgIntentStore
from tests.scripted import call, replay
from tests.trading._binance_http import install

pytestmark = pytest.mark.integration

TAGS = ("PLANTED", "PLNT")  # every marker contains one of these; none may be found anywhere
# 1. config values under wrong keys
CFG_LONG, CFG_SHORT, CFG_SHAPE = "sk-PLANTEDcfgLong7Qz3Xw9", "PLNTcfg1", "ghp_PLANTEDcfgShape0a1b2c3d4e5f"
# 2. env overrides
ENV_LONG, ENV_SHORT = "xoxp-PLANTEDenv-55aa77bb", "PLNTenv2"
# 3. keys in *_env fields (one of them a valid env-var name in form, but shaped like an AWS key id)
ENV_NAME_KEY, ENV_NAME_AWS, ENV_NAME_SHORT = "sk-PLANTEDenvname4k2", "AKIAPLANTED0NAME1234", "plntname3"
# 4. tool arguments and a tool result
TOOL_KEY, TOOL_PW, TOOL_NOTE = "sk-PLANTEDtoolArg9x8c7", "PLNTpw42", "ghp_PLANTEDtoolNote1234567890ab"
TOOL_RESULT = "xoxb-PLANTEDresult-93jd8Kq2"
# 5. exchange: the configured live keys and an error text carrying other keys
LIVE_KEY, LIVE_SECRET = "PLANTED-live-key-3f9a1c77", "PLANTED-live-secret-8d2b6a0f"
EXCH_PAIR, EXCH_AWS = "PLNTexch5", "AKIAPLANTEDEXCH98765"
# 6. task, answer, event payload, log line, cached response
TASK = (
    "What is the BTC/USDT trend over the last day of data, and is the system healthy? "
    "key sk-PLANTEDtask1q2w3e"
)
ANSWER = "BTC/USDT fell 4.25% over the last day (downtrend); the system is healthy. (sk-PLANTEDanswer6t5r4e)"
EVENT_KEY, LOG_KEY, CACHE_KEY = "PLNTevent7", "PLNTlog8", "sk-PLANTEDcache2w3e4r"

PLUGIN = f'''
def exchange_login(account: str, api_key: str, password: str = "", note: str = "") -> str:
    """Log in to an exchange account (a test plugin whose result carries a session key).

    Args:
        account: Account name.
        api_key: The API key.
        password: The account password.
        note: Anything.
    """
    return f"logged in {{account}}; session {TOOL_RESULT}"


def register(skills):
    skills.add(exchange_login, agents=["trader"])
'''


def alina(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ALINA_")} | (env or {})
    cmd = [sys.executable, "-m", "alina", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=full_env)


def dump_postgres(dsn: str) -> str:
    """Every row of every table in the public schema, as JSON text."""
    chunks = []
    with psycopg.connect(dsn) as conn:
        q_tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        tables = [r[0] for r in conn.execute(q_tables).fetchall()]
        for table in tables:
            q = sql.SQL("SELECT row_to_json(t)::text FROM {} t").format(sql.Identifier(table))
            chunks += [r[0] for r in conn.execute(q).fetchall()]
    assert {"runs", "messages", "checkpoints", "tool_calls", "events", "relations", "entities"} <= set(tables)
    return "\n".join(chunks)


def dump_redis(url: str) -> str:
    """Every key and value in the Redis database (typed reads: DUMP may be LZF-compressed)."""
    r = redis.Redis.from_url(url, decode_responses=False)
    out: list[bytes] = []
    for key in r.scan_iter(count=1000):
        out.append(key)
        kind = r.type(key)
        if kind == b"string":
            out.append(r.get(key) or b"")
        elif kind == b"list":
            out += r.lrange(key, 0, -1)
        elif kind == b"hash":
            out += [b for kv in r.hgetall(key).items() for b in kv]
        elif kind == b"set":
            out += list(r.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        out.append(r.dump(key) or b"")
    r.close()
    return b"\n".join(out).decode("utf-8", "replace")


def dump_files(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


class FakeEmbedder:
    """Constant vectors: Chroma stores the texts for real, with no model to load."""

    name = "fake-8"

    async def embed(self, texts: Any) -> Any:
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def scripted_clients() -> dict[str, Any]:
    args = {"account": "main", "api_key": TOOL_KEY, "password": TOOL_PW, "note": f"backup {TOOL_NOTE}"}
    trader_turn = CreateResult(
        finish_reason="function_calls",
        content=[
            FunctionCall(id="c1", name="exchange_login", arguments=json.dumps(args)),
            FunctionCall(id="c2", name="balance", arguments="{}"),
        ],
        usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
        cached=False,
    )
    scripts = {"trader": [trader_turn], "monitor": [call("system_health")], "alina": [ANSWER]}
    names = ("alina", "trader", "monitor", "optimizer", "selector")
    return {n: ResilientClient(n, replay(*scripts.get(n, [])), retries=0) for n in names}


def config_file(tmp_path: Path, dsn: str, redis_port: int, plugins: Path) -> Path:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    data = {
        "paths": {"data_dir": str(tmp_path / "data")},
        "postgres": {
            "host": info["host"],
            "port": int(info["port"]),
            "user": info["user"],
            "database": info["dbname"],
        },
        "redis": {"port": redis_port},
        "skills": {"plugin_dir": str(plugins)},
        "trading": {"mode": "live"},
        "memory": {"path": str(tmp_path / "chroma")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_planted_config_secrets_never_appear_in_cli_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "embedded": {"api_key": CFG_LONG, "pasword": CFG_SHORT, "n_ctx": CFG_SHAPE},
                    "remote": {"provider": "openai", "base_url": "http://x/v1", "api_key_env": ENV_NAME_AWS},
                },
                "postgres": {"password_env": ENV_NAME_SHORT},
                "trading": {"api_key_env": ENV_NAME_KEY},
            }
        )
    )
    env = {"ALINA__MODELS__EMBEDDED__API_KEY": ENV_LONG, "ALINA__POSTGRES__PASSWORD": ENV_SHORT}
    structure = alina("config", "check", str(bad), env=env)
    # Without the structural errors the cross-field rules (the *_env names) run too.
    bad_names = tmp_path / "names.yaml"
    bad_names.write_text(
        yaml.safe_dump(
            {
                "models": {
                    "remote": {"provider": "openai", "base_url": "http://x/v1", "api_key_env": ENV_NAME_AWS}
                },
                "postgres": {"password_env": ENV_NAME_SHORT},
                "trading": {"api_key_env": ENV_NAME_KEY},
            }
        )
    )
    names = alina("config", "check", str(bad_names))
    run = alina("run", "a task", "--config", str(bad), env=env)
    assert structure.returncode == names.returncode == run.returncode == 2
    text = "\n".join(p.stdout + p.stderr for p in (structure, names, run))
    for field in (
        "models.embedded.api_key: unknown field",
        "models.embedded.pasword: unknown field",
        "models.embedded.n_ctx:",
        "postgres.password: unknown field",
        "models.remote.api_key_env: must name an environment variable",
        "postgres.password_env: must name an environment variable",
        "trading.api_key_env: must name an environment variable",
    ):
        assert field in text, text
    for tag in (*TAGS, ENV_NAME_SHORT):  # the tmp path holds "planted" in lower case: tags are cased
        assert tag not in text, text


async def test_planted_secrets_never_appear_in_any_store_log_output_or_metric(
    tmp_path: Path,
    fresh_pg_dsn: str,
    redis_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "login_plugin.py").write_text(PLUGIN)
    cfg_path = config_file(tmp_path, fresh_pg_dsn, redis_service.port, plugins)
    cfg: AlinaConfig = load_config(cfg_path, environ={})
    double = install(monkeypatch)
    fail_account = False
    handle = double.handle

    async def failing_account(ex: Any, url: str, method: str, headers: dict[str, str], body: Any) -> Any:
        if fail_account and urlparse(url).path.endswith("/account"):
            raise ccxt.AuthenticationError(
                f"binance {method} {url}&apiKey={EXCH_PAIR} invalid; key {EXCH_AWS} ({LIVE_KEY})"
            )
        return await handle(ex, url, method, headers, body)

    double.handle = failing_account  # type: ignore[method-assign]
    environ = {"ALINA_EXCHANGE_API_KEY": LIVE_KEY, "ALINA_EXCHANGE_API_SECRET": LIVE_SECRET}

    store = RunStore(cfg.postgres.dsn())
    await store.open()
    hot = HotState(cfg.redis.url())
    memory = VectorMemory(VectorConfig(path=str(tmp_path / "chroma")), embedder=FakeEmbedder())
    await memory.open()
    events = EventWriter(store)
    printed: list[str] = []
    async with (
        PgIntentStore(cfg.postgres.dsn()) as intents,
        PostgresToolCallRecorder(cfg.postgres.dsn()) as recorder,
    ):
        desk = await open_desk(cfg.trading, live=True, intents=intents, environ=environ)
        bind = contextlib.ExitStack()
        bind.enter_context(bind_skills(SkillBindings(loader=SkillLoader.from_config(cfg, recorder=recorder))))
        bind.enter_context(bind_desk(desk))  # keeps the loader bound above
        try:
            fail_account = True
            writer = RunMemoryWriter.from_config(cfg, memory=memory, graph=MemoryGraph(store), store=store)
            runner = TeamRunner(
                cfg,
                sink=store,
                hot=hot,
                clients=scripted_clients(),
                memory=memory,
                memory_writer=writer,
                events=events,
                on_event=lambda e: printed.append(e.content),
            )
            with run_scope("planted-run"):
                result = await runner.run(TASK, run_id="planted-run")
            await runner.close()  # waits for the memory and graph writes
            await events.emit("planted", {"api_key": EVENT_KEY, "url": f"https://x/?token={EVENT_KEY}"})
            logging.getLogger("alina.test").warning("login with apiKey=%s failed", LOG_KEY)
            cache = ResponseCache(cfg.redis.url())
            await cache.set(
                "alina:llm:planted",
                CreateResult(
                    finish_reason="function_calls",
                    usage=RequestUsage(prompt_tokens=1, completion_tokens=1),
                    content=[
                        FunctionCall(id="x", name="login", arguments=json.dumps({"api_key": CACHE_KEY}))
                    ],
                    cached=False,
                ),
            )
            await cache.close()
        finally:
            bind.close()
            await desk.close()
            await events.close()
            await hot.close()
            await memory.close()
            await store.close()

    assert result.status == "completed", result.error
    _print_json(result.to_json(), ensure_ascii=False)  # what `alina run --json` prints
    contents = {e.type: e.content for e in result.events if e.source == "trader"}
    assert "exchange_login" in contents["ToolCallRequestEvent"] and "***" in contents["ToolCallRequestEvent"]
    assert "logged in main; session ***" in contents["ToolCallExecutionEvent"]  # the plugin ran
    assert "balance: AuthenticationError" in contents["ToolCallExecutionEvent"]  # the exchange error is there
    cli_env = {"ALINA_CONFIG": str(cfg_path)}
    shown = [
        alina("runs", "show", "planted-run", env=cli_env),
        alina("runs", "show", "planted-run", "--json", env=cli_env),
        alina("runs", "list", "--json", env=cli_env),
    ]
    assert all(p.returncode == 0 for p in shown), [p.stderr for p in shown]
    assert "exchange_login" in shown[0].stdout

    places = {
        "printed events and `run --json`": "\n".join(printed) + capsys.readouterr().out,
        "CLI stdout/stderr": "\n".join(p.stdout + p.stderr for p in shown),
        "logs": caplog.text,
        "postgres": dump_postgres(fresh_pg_dsn),
        "redis": dump_redis(cfg.redis.url()),
        "chroma files": dump_files(tmp_path / "chroma"),
        "metrics": generate_latest(REGISTRY).decode(),
    }
    # The scan must look at real content: the run is in every store.
    assert "exchange_login" in places["postgres"] and "planted" in places["postgres"]
    assert "alina:run:planted-run" in places["redis"] and "exchange_login" in places["redis"]
    assert "alina:llm:planted" not in places["redis"]  # a response carrying a key is not cached
    assert '"tool": "exchange_login"' in places["postgres"] or '"tool":"exchange_login"' in places["postgres"]
    assert "BTC/USDT" in places["chroma files"]
    assert "alina_" in places["metrics"]
    for where, text in places.items():
        for tag in TAGS:
            assert tag not in text, f"a planted secret leaked into {where}: ...{_around(text, tag)}..."


def _around(text: str, tag: str) -> str:
    i = text.find(tag)
    return text[max(0, i - 120) : i + 60]
