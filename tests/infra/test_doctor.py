"""`alina doctor` checks against real services."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from alina.runtime.doctor import Check, check_disk, check_model, run_checks
from alina.runtime.services import PostgresService, RedisService

pytestmark = pytest.mark.integration


@pytest.fixture
def gguf_file(tmp_path: Path) -> Path:
    """A tiny file with a valid GGUF header (magic, version 3, zero tensors and keys)."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + b"\0" * 2000)
    return path


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_all_ok(
    gguf_file: Path, pg_service: PostgresService, redis_service: RedisService, tmp_path: Path
) -> None:
    checks = run_checks(
        model_path=gguf_file,
        pg_dsn=pg_service.dsn,
        redis_url=redis_service.url,
        data_dir=tmp_path / "not" / "yet" / "created",
        min_free_gb=0.001,
    )
    assert [c.name for c in checks] == ["model", "postgres", "redis", "disk"]
    assert all(c.ok for c in checks), checks
    assert all(c.fix == "" for c in checks)
    found = _by_name(checks)
    assert "GGUF v3" in found["model"].detail and "KB" in found["model"].detail
    assert found["postgres"].detail.startswith("PostgreSQL ")
    assert found["redis"].detail.startswith("Redis ")
    assert str(tmp_path) in found["disk"].detail


def test_failures_carry_fixes(
    tmp_path: Path, pg_service: PostgresService, free_port: Callable[[], int]
) -> None:
    closed = free_port()
    checks = _by_name(
        run_checks(
            model_path=tmp_path / "missing.gguf",
            pg_dsn=pg_service.dsn_for("no_such_db"),
            redis_url=f"redis://:hunter2@127.0.0.1:{closed}/0",
            data_dir=tmp_path,
            min_free_gb=1e9,  # a petabyte: cannot be satisfied
        )
    )
    assert not any(c.ok for c in checks.values())
    assert "not found" in checks["model"].detail and "make setup" in checks["model"].fix
    assert "no_such_db" in checks["postgres"].detail and "alina up" in checks["postgres"].fix
    assert str(closed) in checks["redis"].detail and "alina up" in checks["redis"].fix
    assert "hunter2" not in checks["redis"].detail
    assert "free disk space" in checks["disk"].fix


def test_not_a_gguf_file(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("<html>404</html>")
    check = check_model(bogus)
    assert not check.ok and "not a GGUF" in check.detail and ".gguf" in check.fix


def test_postgres_down(free_port: Callable[[], int]) -> None:
    from alina.runtime.doctor import check_postgres

    check = check_postgres(f"postgresql://postgres:pw@127.0.0.1:{free_port()}/alina")
    assert not check.ok and "alina up" in check.fix and ":pw@" not in check.detail


def test_disk_uses_nearest_existing_parent(tmp_path: Path) -> None:
    check = check_disk(tmp_path / "a" / "b", min_free_gb=0.0)
    assert check.ok and f"at {tmp_path} " in check.detail
