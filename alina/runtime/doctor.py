"""``alina doctor``: quick health checks of what a run needs, each failure with a concrete fix."""

from __future__ import annotations

import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from alina.memory_store.runs import redact_dsn
from alina.runtime.services import find_pg_bindir

__all__ = [
    "Check",
    "check_disk",
    "check_model",
    "check_postgres",
    "check_redis",
    "run_checks",
]

_TIMEOUT_S = 3
_GGUF_MAGIC = b"GGUF"
_UP_FIX = "run `alina up` (starts the local Postgres and Redis)"


@dataclass
class Check:
    """Result of one check; ``fix`` says what to do when ``ok`` is False (empty when ok)."""

    name: str
    ok: bool
    detail: str
    fix: str


def run_checks(
    *,
    model_path: Path,
    pg_dsn: str,
    redis_url: str,
    data_dir: Path,
    min_free_gb: float = 2.0,
) -> list[Check]:
    """Run the model, postgres, redis and disk checks (in that order); never raises."""
    return [
        check_model(model_path),
        check_postgres(pg_dsn),
        check_redis(redis_url),
        check_disk(data_dir, min_free_gb),
    ]


def check_model(model_path: Path) -> Check:
    """The model file exists and starts with the GGUF magic; detail shows size and GGUF version."""
    path = Path(model_path)
    setup_fix = "run `make setup` (installs the model), or set the model path in config.yaml"
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        return Check("model", False, f"{path}: {what}", setup_fix)
    try:
        with path.open("rb") as fh:
            header = fh.read(8)
        size = path.stat().st_size
    except OSError as exc:
        return Check("model", False, f"{path}: cannot read ({exc.strerror})", setup_fix)
    if header[:4] != _GGUF_MAGIC:
        return Check(
            "model",
            False,
            f"{path} is not a GGUF file (starts with {header[:4]!r})",
            "point the model path in config.yaml at a .gguf model; if the file was truncated, "
            "run `make setup` again",
        )
    version = struct.unpack("<I", header[4:8])[0] if len(header) == 8 else "?"
    return Check("model", True, f"{path} (GGUF v{version}, {_human_size(size)})", "")


def check_postgres(pg_dsn: str) -> Check:
    """Connect (3 s timeout) and run ``select version()``."""
    where = redact_dsn(pg_dsn)
    try:
        with psycopg.connect(
            pg_dsn, connect_timeout=_TIMEOUT_S, options=f"-c statement_timeout={_TIMEOUT_S * 1000}"
        ) as conn:
            row = conn.execute("SELECT version()").fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = _UP_FIX
        if find_pg_bindir() is None:
            fix = "run `make setup` (installs PostgreSQL), then `alina up`"
        return Check("postgres", False, f"{where}: {reason}", fix)
    version = " ".join(str(row[0]).split()[:2]) if row else "unknown version"
    return Check("postgres", True, f"{version} at {where}", "")


def check_redis(redis_url: str) -> Check:
    """PING with a 3 s timeout and report the server version."""
    where = _redact_url(redis_url)
    try:
        import redis
    except ImportError:
        return Check("redis", False, "python package `redis` is not installed", "run `make setup`")
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S)
    try:
        client.ping()
        version = client.info("server").get("redis_version", "unknown")
    except (redis.RedisError, OSError) as exc:
        fix = _UP_FIX
        if shutil.which("redis-server") is None:
            fix = "run `make setup` (installs redis-server), then `alina up`"
        return Check("redis", False, f"{where}: {exc}", fix)
    finally:
        client.close()
    return Check("redis", True, f"Redis {version} at {where}", "")


def check_disk(data_dir: Path, min_free_gb: float = 2.0) -> Check:
    """Free space on the filesystem of ``data_dir`` (or its nearest existing parent)."""
    path = Path(data_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free_gb = shutil.disk_usage(path).free / 1e9
    except OSError as exc:
        return Check("disk", False, f"{path}: {exc.strerror}", "check that data_dir is readable")
    detail = f"{free_gb:.1f} GB free at {path} (need {min_free_gb:.1f} GB)"
    if free_gb < min_free_gb:
        return Check(
            "disk",
            False,
            detail,
            "free disk space on that filesystem, or set data_dir in config.yaml to a larger disk",
        )
    return Check("disk", True, detail, "")


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
