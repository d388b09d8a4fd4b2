"""The local Redis server: a daemon without persistence, found again by its pid file."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from alina.runtime.services._common import (
    SETUP_HINT,
    PortInUseError,
    ServiceError,
    port_in_use,
    run,
    tail,
)
from alina.runtime.services._processes import pid_alive, port_is_free, wait_until_dead

__all__ = ["RedisService"]


def _redis_server_pid(host: str, port: int, timeout: float = 1.0) -> int | None:
    """``process_id`` from ``INFO server`` of the Redis on ``host:port``, or None if none answers."""
    pattern = re.compile(rb"process_id:(\d+)\r\n")
    data = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"INFO server\r\n")
            while (match := pattern.search(data)) is None and len(data) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisService:
    """A redis-server daemon listening on ``host:port``, pid/log files in ``data_dir``.

    Persistence is off (``--save "" --appendonly no``): Redis is a cache here.
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    server_bin: str = "redis-server"
    cli_bin: str = "redis-cli"
    timeout: float = 15.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()

    @property
    def url(self) -> str:
        """Connection URL, e.g. ``redis://127.0.0.1:6379/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        """The pid file written by redis-server."""
        return self.data_dir / "redis.pid"

    @property
    def log_file(self) -> Path:
        """The redis-server log."""
        return self.data_dir / "redis.log"

    def is_running(self) -> bool:
        """True if the redis-server recorded in this data directory's pid file is alive."""
        pid = self._pid()
        return pid is not None and pid_alive(pid, ("redis",))

    def start(self) -> str:
        """Start redis-server as a daemon and wait until it answers PING.

        Idempotent: returns ``"started"`` or ``"already running"``. Raises PortInUseError if the
        port is held by something else, ServiceError if redis-server is missing or fails.
        """
        server = shutil.which(self.server_bin)
        if server is None:
            raise ServiceError(
                f"{self.server_bin} not found on PATH; {SETUP_HINT} "
                "(or `apt-get install -y --no-install-recommends redis-server`)."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_running():
            if _redis_server_pid(self.host, self.port) == self._pid():
                return "already running"
            raise ServiceError(
                f"Redis of {self.data_dir} (pid {self._pid()}) is running but does not answer on "
                f"{self.host}:{self.port}; it was probably started with another port. "
                "Run `alina down` then `alina up`."
            )
        if not port_is_free(self.host, self.port):
            raise PortInUseError(port_in_use("redis", self.host, self.port, self.data_dir, "redis.port"))
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        cmd = [
            server,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--pidfile",
            str(self.pid_file),
            "--logfile",
            str(self.log_file),
        ]
        result = run(cmd, timeout=self.timeout, what="redis-server")
        if result.returncode != 0:
            raise ServiceError(
                f"redis-server failed to start: {(result.stderr or result.stdout).strip()}\n"
                f"{tail(self.log_file, start=log_start)}"
            )
        self._wait_ready(log_start)
        return "started"

    def stop(self) -> str:
        """Shut redis-server down without saving. Idempotent: ``"stopped"`` or ``"not running"``."""
        pid = self._pid()
        if pid is None or not pid_alive(pid, ("redis",)):
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        cli = shutil.which(self.cli_bin)
        # Only talk to the port if our process is the one answering there: never shut down a
        # foreign Redis that took over the configured port.
        used_cli = False
        if cli is not None and _redis_server_pid(self.host, self.port) == pid:
            run(
                [cli, "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
                timeout=self.timeout,
                what="redis-cli shutdown",
            )
            used_cli = True
        if pid_alive(pid) and not wait_until_dead(pid, 2.0 if used_cli else 0.0):
            # No redis-cli, or the server listens elsewhere: SIGTERM also shuts down cleanly.
            os.kill(pid, signal.SIGTERM)
        if not wait_until_dead(pid, self.timeout):
            raise ServiceError(
                f"redis-server (pid {pid}) did not exit within {self.timeout:.0f}s; "
                f"see {self.log_file}, then `kill {pid}`."
            )
        self.pid_file.unlink(missing_ok=True)
        return "stopped"

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _wait_ready(self, log_start: int) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if _redis_ping(self.host, self.port, timeout=0.5):
                return
            log = tail(self.log_file, start=log_start)
            if "Address already in use" in log:
                raise PortInUseError(port_in_use("redis", self.host, self.port, self.data_dir, "redis.port"))
            if "aborting" in log.lower() or "Fatal" in log:
                raise ServiceError(f"redis-server failed to start:\n{log}\n(log: {self.log_file})")
            time.sleep(0.05)
        raise ServiceError(
            f"redis-server did not answer on {self.host}:{self.port} within {self.timeout:.0f}s:\n"
            f"{tail(self.log_file, start=log_start)}\n(log: {self.log_file})"
        )
