"""Shared fixtures: the model-request guard, and real Postgres and Redis servers.

Unit tests run with real model requests disabled (``alina.models`` raises
RealModelCallBlocked), so an accidental real model call fails loudly; tests marked
``integration`` or ``slow`` may call the embedded model. Service fixtures: ``infra_root``,
``free_port``, ``pg_service``, ``redis_service``, ``fresh_pg_dsn``, ``alina_config_file``.

Data lives under ``<repo>/.alina/test-*`` rather than pytest's tmp dir: Postgres runs as OS
user ``postgres`` (it refuses root), which must be able to traverse every parent directory, and
pytest's default basetemp may sit under a 0700 home directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from alina.runtime.services import PostgresService, RedisService, ServiceError, ensure_traversable

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _quiet_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process team runs see a quiet machine: the monitor's health verdict (which ALINA's
    answer is checked against) must depend neither on the CI box's load nor on model latencies
    other tests recorded. Subprocess runs (the CLI tests) see the real machine."""
    from alina.monitoring.metrics import LatencyWindow

    monkeypatch.setattr("alina.skills.builtin.os.getloadavg", lambda: (0.2, 0.2, 0.2))
    monkeypatch.setattr("alina.skills.builtin.LATENCY", LatencyWindow())


@pytest.fixture(autouse=True)
def _model_request_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Block real model requests except in tests marked integration or slow."""
    from alina.models import allow_model_requests

    real = request.node.get_closest_marker("integration") or request.node.get_closest_marker("slow")
    with allow_model_requests(bool(real)):
        yield


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Factory returning a TCP port that is free on 127.0.0.1 right now."""
    return _free_port


@pytest.fixture(scope="session")
def infra_root() -> Iterator[Path]:
    """A session directory that user ``postgres`` can traverse: ``<repo>/.alina/test-*``, or
    ``$TMPDIR/alina-test-*`` when the checkout sits under a directory ``postgres`` cannot enter."""
    base = REPO_ROOT / ".alina"
    base.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        try:
            ensure_traversable(base / "x", "postgres")
        except ServiceError:
            # Checkout under a 0700 directory (e.g. /root): fall back to the system temp dir.
            base = Path(tempfile.gettempdir())
    root = Path(tempfile.mkdtemp(prefix="alina-test-" if base.name != ".alina" else "test-", dir=base))
    root.chmod(0o755)  # mkdtemp creates 0700
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_service(infra_root: Path) -> Iterator[PostgresService]:
    """A running Postgres (fsync off) on a free port for the whole session; stopped at the end."""
    service = PostgresService(data_dir=infra_root / "pg", port=_free_port(), fast=True)
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def redis_service(infra_root: Path) -> Iterator[RedisService]:
    """A running redis-server on a free port for the whole session; stopped at the end."""
    service = RedisService(data_dir=infra_root / "redis", port=_free_port())
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def fresh_pg_dsn(pg_service: PostgresService) -> Iterator[str]:
    """DSN of a new, empty database on ``pg_service``; dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_service.dsn_for("postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield pg_service.dsn_for(name)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def alina_config_file(infra_root: Path, pg_service: PostgresService, redis_service: RedisService) -> Path:
    """A config.yaml pointing at the session's Postgres and Redis (for CLI and e2e tests)."""
    import yaml

    path = infra_root / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(infra_root / "data")},
                "postgres": {"port": pg_service.port},
                "redis": {"port": redis_service.port},
            }
        )
    )
    return path
