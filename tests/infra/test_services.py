"""Local Postgres/Redis services: idempotent start/stop, clear errors."""

from __future__ import annotations

import os
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from alina.runtime.services import (
    PortInUseError,
    PostgresService,
    RedisService,
    ServiceError,
    ensure_traversable,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def busy_port(free_port: Callable[[], int]) -> Iterator[int]:
    """A port held by a listening socket that is not one of our services."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_session_services_answer(pg_service: PostgresService, redis_service: RedisService) -> None:
    with psycopg.connect(pg_service.dsn, connect_timeout=3) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("alina",)
    assert redis.Redis.from_url(redis_service.url, socket_timeout=3).ping()


def test_postgres_start_stop_idempotent(infra_root: Path, free_port: Callable[[], int]) -> None:
    service = PostgresService(data_dir=infra_root / "pg-idem", port=free_port(), fast=True)
    try:
        assert service.stop() == "not running"
        assert service.start() == "started"
        assert service.is_running()
        assert service.start() == "already running"
        # A second object over the same data dir recognises the server as its own.
        twin = PostgresService(data_dir=infra_root / "pg-idem", port=service.port)
        assert twin.start() == "already running"
        with psycopg.connect(service.dsn, connect_timeout=3) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        # Same data dir, other configured port: refuse with the port it really runs on.
        other = PostgresService(data_dir=infra_root / "pg-idem", port=free_port())
        with pytest.raises(ServiceError, match=str(service.port)):
            other.start()
        assert service.stop() == "stopped"
        assert not service.is_running()
        assert service.stop() == "not running"
        # Restart of an existing cluster (no initdb); default mode keeps fsync on.
        durable = PostgresService(data_dir=infra_root / "pg-idem", port=service.port)
        assert durable.start() == "started"
        with psycopg.connect(durable.dsn, connect_timeout=3) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)
    finally:
        service.stop()


def test_redis_start_stop_idempotent(infra_root: Path, free_port: Callable[[], int]) -> None:
    service = RedisService(data_dir=infra_root / "redis-idem", port=free_port())
    try:
        assert service.stop() == "not running"
        assert service.start() == "started"
        assert service.is_running()
        assert service.start() == "already running"
        assert RedisService(data_dir=infra_root / "redis-idem", port=service.port).start() == (
            "already running"
        )
        client = redis.Redis.from_url(service.url, socket_timeout=3)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        other = RedisService(data_dir=infra_root / "redis-idem", port=free_port())
        with pytest.raises(ServiceError, match="another port"):
            other.start()
        assert service.stop() == "stopped"
        assert not service.is_running()
        assert service.stop() == "not running"
    finally:
        service.stop()


def test_postgres_port_in_use(infra_root: Path, busy_port: int) -> None:
    service = PostgresService(data_dir=infra_root / "pg-busy", port=busy_port)
    with pytest.raises(PortInUseError) as info:
        service.start()
    message = str(info.value)
    assert f"port {busy_port}" in message
    assert "ALINA__POSTGRES__PORT" in message and "postgres.port" in message
    assert f"pid {os.getpid()}" in message  # the holder is this test process
    assert not (infra_root / "pg-busy" / "PG_VERSION").exists()  # failed before initdb


def test_redis_port_in_use(infra_root: Path, busy_port: int) -> None:
    service = RedisService(data_dir=infra_root / "redis-busy", port=busy_port)
    with pytest.raises(PortInUseError, match=rf"port {busy_port}.*ALINA__REDIS__PORT"):
        service.start()
    assert not service.is_running()


def test_port_in_use_by_bound_socket_without_listen(infra_root: Path, free_port: Callable[[], int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
        port = int(sock.getsockname()[1])
        with pytest.raises(PortInUseError, match=f"port {port}"):
            RedisService(data_dir=infra_root / "redis-bound", port=port).start()


def test_missing_redis_binary(infra_root: Path, free_port: Callable[[], int]) -> None:
    service = RedisService(
        data_dir=infra_root / "redis-nobin", port=free_port(), server_bin="redis-server-missing"
    )
    with pytest.raises(ServiceError, match="make setup") as info:
        service.start()
    assert not isinstance(info.value, PortInUseError)
    assert "apt-get install" in str(info.value)


def test_missing_postgres_binaries(infra_root: Path, free_port: Callable[[], int]) -> None:
    service = PostgresService(
        data_dir=infra_root / "pg-nobin", port=free_port(), bin_dir=infra_root / "no-such-bin"
    )
    with pytest.raises(ServiceError, match="make setup"):
        service.start()


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres-user permission check applies to root")
def test_non_traversable_parent(infra_root: Path, free_port: Callable[[], int]) -> None:
    locked = infra_root / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0o700)
    service = PostgresService(data_dir=locked / "pg", port=free_port())
    with pytest.raises(ServiceError) as info:
        service.start()
    message = str(info.value)
    assert str(locked) in message and "chmod o+x" in message and "postgres.data_dir" in message

    assert ensure_traversable(locked / "pg", "postgres", fix=True) == [locked]
    assert locked.stat().st_mode & stat.S_IXOTH
    assert ensure_traversable(locked / "pg", "postgres") == []


def test_restart_after_crash(infra_root: Path, free_port: Callable[[], int]) -> None:
    """A SIGKILLed server (possibly a zombie nobody reaps) does not block the next start."""
    pg = PostgresService(data_dir=infra_root / "pg-crash", port=free_port(), fast=True)
    cache = RedisService(data_dir=infra_root / "redis-crash", port=free_port())
    try:
        pg.start()
        cache.start()
        postmaster = int((pg.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        os.kill(int(cache.pid_file.read_text()), signal.SIGKILL)
        assert wait_for(lambda: not pg.is_running() and not cache.is_running())
        assert pg.start() == "started"
        assert cache.start() == "started"
        with psycopg.connect(pg.dsn, connect_timeout=3) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(cache.url, socket_timeout=3).ping()
    finally:
        pg.stop()
        cache.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
