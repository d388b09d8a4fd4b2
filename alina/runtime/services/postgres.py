"""The local Postgres cluster: initdb, pg_ctl start/stop, the database, stale lock files."""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from alina.runtime.services._common import (
    SETUP_HINT,
    PortInUseError,
    ServiceError,
    ensure_traversable,
    logger,
    port_in_use,
    run,
    tail,
)
from alina.runtime.services._processes import pid_alive, port_is_free, processes_in

__all__ = ["PostgresService", "find_pg_bindir"]

# sockaddr_un.sun_path holds 108 bytes including the trailing NUL.
_MAX_UNIX_SOCKET_PATH = 107


def find_pg_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl: from ``pg_config``, PATH, or /usr/lib/postgresql/N/bin."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out and (Path(out) / "pg_ctl").exists():
            return Path(out)
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if candidates:

        def major(path: str) -> int:
            version = Path(path).parts[-3]
            return int(version) if version.isdigit() else 0

        return Path(max(candidates, key=major)).parent
    return None


@dataclass
class PostgresService:
    """A Postgres cluster in ``data_dir`` (the PGDATA directory) listening on ``host:port``.

    ``fast=True`` turns off fsync and synchronous commit (tests only: a crash can lose data).
    ``fix_permissions=True`` lets ``start()`` chmod o+x parent directories that the
    ``postgres`` OS user cannot enter instead of failing.
    """

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "alina"
    user: str = "postgres"
    fast: bool = False
    bin_dir: Path | None = None
    os_user: str = "postgres"
    timeout: float = 60.0
    fix_permissions: bool = False

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).absolute()

    @property
    def dsn(self) -> str:
        """Connection URL of the service's database, e.g. ``postgresql://postgres@127.0.0.1:5432/alina``."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        """Connection URL of another database on the same server."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def log_file(self) -> Path:
        """Server log written by ``pg_ctl -l``."""
        return self.data_dir / "server.log"

    def is_running(self) -> bool:
        """True if a postmaster of this data directory is alive (per ``postmaster.pid``)."""
        info = self._pid_file()
        return info is not None and pid_alive(info[0], ("postgres", "postmaster"))

    def running_port(self) -> int | None:
        """Port of the running postmaster of this data directory, or None if it is not running."""
        info = self._pid_file()
        if info is None or not pid_alive(info[0], ("postgres", "postmaster")):
            return None
        return info[1]

    def start(self) -> str:
        """Start the server (initdb first if needed) and create the database if missing.

        Idempotent: returns ``"started"`` or ``"already running"``. Raises PortInUseError if the
        port is held by something else, ServiceError for anything else that needs an operator.
        """
        bindir = self._bindir()
        running = self.running_port()
        if running is not None:
            if running != self.port:
                raise ServiceError(
                    f"Postgres of {self.data_dir} is already running on port {running}, not on "
                    f"the configured port {self.port}. Run `alina down` then `alina up`, or set "
                    f"postgres.port back to {running}."
                )
            self._ensure_database()
            return "already running"
        if not port_is_free(self.host, self.port):
            raise PortInUseError(
                port_in_use("postgres", self.host, self.port, self.data_dir, "postgres.port")
            )
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bindir)
        self._remove_stale_pid_file()
        self._pg_ctl_start(bindir)
        self._ensure_database()
        return "started"

    def stop(self) -> str:
        """Stop the server (``pg_ctl -m fast stop``). Idempotent: ``"stopped"`` or ``"not running"``."""
        if not self.is_running():
            return "not running"
        bindir = self._bindir()
        wait = max(5, int(self.timeout))
        cmd = self._as_os_user(
            [str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(wait), "stop"]
        )
        result = run(cmd, timeout=wait + 10, what="pg_ctl stop")
        if result.returncode != 0 and self.is_running():
            reason = (result.stderr or result.stdout).strip()
            raise ServiceError(
                f"Postgres of {self.data_dir} did not stop: {reason}. "
                f"See {self.log_file}; if it hangs, run `pg_ctl -D {self.data_dir} -m immediate stop` "
                f"as user {self.os_user}."
            )
        return "stopped"

    # -- internals --------------------------------------------------------------------------

    def _remove_stale_pid_file(self) -> None:
        """Drop the lock files left by a killed postmaster that is now a zombie.

        Postgres treats a zombie pid as alive (kill(0) succeeds) and refuses to start; that
        happens in containers whose PID 1 does not reap orphans. Removed only when no live
        Postgres process still works in the data directory.
        """
        info = self._pid_file()
        if info is None or pid_alive(info[0], ("postgres", "postmaster")) or not psutil.LINUX:
            return
        # Orphaned backends notice the postmaster's death and exit on their own; give them time.
        deadline = time.monotonic() + 10
        while (leftovers := processes_in(self.data_dir, ("postgres",))) and time.monotonic() < deadline:
            time.sleep(0.1)
        if leftovers:
            raise ServiceError(
                f"Postgres processes {', '.join(map(str, leftovers))} of a crashed server still use "
                f"{self.data_dir}; wait for them to exit (or kill them), then run `alina up` again."
            )
        # The socket lock files in the data dir (our -k) carry the same dead pid.
        for lock in [self.data_dir / "postmaster.pid", *self.data_dir.glob(".s.PGSQL.*.lock")]:
            try:
                if lock.read_text().split()[0] == str(info[0]):
                    lock.unlink()
            except (OSError, IndexError):
                continue
        logger.warning("removed stale lock files of dead postmaster %d in %s", info[0], self.data_dir)

    def _pid_file(self) -> tuple[int, int | None] | None:
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
        return pid, port

    def _bindir(self) -> Path:
        bindir = Path(self.bin_dir) if self.bin_dir else find_pg_bindir()
        if bindir is None or not (bindir / "pg_ctl").exists() or not (bindir / "initdb").exists():
            where = f" in {bindir}" if bindir else ""
            raise ServiceError(
                f"PostgreSQL server programs (initdb, pg_ctl) not found{where}; {SETUP_HINT} "
                "(or `apt-get install -y postgresql-15`), or set the binary directory."
            )
        return bindir

    def _as_root(self) -> bool:
        return os.geteuid() == 0 and self.os_user != "root"

    def _as_os_user(self, cmd: list[str]) -> list[str]:
        if not self._as_root():
            return cmd
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self.os_user, "--", *cmd]

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._as_root():
            return
        ensure_traversable(self.data_dir, self.os_user, fix=self.fix_permissions)
        pw = pwd.getpwnam(self.os_user)
        if self.data_dir.stat().st_uid != pw.pw_uid:
            for root, dirs, files in os.walk(self.data_dir):
                for name in (root, *(os.path.join(root, n) for n in dirs + files)):
                    os.chown(name, pw.pw_uid, pw.pw_gid, follow_symlinks=False)

    def _initdb(self, bindir: Path) -> None:
        cmd = self._as_os_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        result = run(cmd, timeout=self.timeout, what="initdb")
        if result.returncode != 0:
            raise ServiceError(
                f"initdb of {self.data_dir} failed: {(result.stderr or result.stdout).strip()[-800:]}. "
                "If the directory holds something else, choose an empty postgres.data_dir."
            )
        logger.info("initialized a new Postgres cluster in %s", self.data_dir)

    def _server_options(self) -> str:
        opts = ["-p", str(self.port), "-c", f"listen_addresses={self.host}"]
        if len(str(self.data_dir / f".s.PGSQL.{self.port}.lock")) <= _MAX_UNIX_SOCKET_PATH:
            opts += ["-k", str(self.data_dir)]
        else:
            # Path too long for a Unix socket; we only use TCP anyway.
            opts += ["-c", "unix_socket_directories="]
        if self.fast:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
        return shlex.join(opts)

    def _pg_ctl_start(self, bindir: Path) -> None:
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        wait = max(5, int(self.timeout))
        cmd = self._as_os_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(wait),
                "-o",
                self._server_options(),
                "start",
            ]
        )
        result = run(cmd, timeout=wait + 15, what="pg_ctl start")
        if result.returncode == 0 and self.is_running():
            return
        log = tail(self.log_file, start=log_start)
        if "could not bind" in log and "in use" in log:
            raise PortInUseError(
                port_in_use("postgres", self.host, self.port, self.data_dir, "postgres.port")
            )
        raise ServiceError(
            f"Postgres did not start on {self.host}:{self.port}: "
            f"{(result.stderr or result.stdout).strip()[-400:]}\n{log}\n(full log: {self.log_file})"
        )

    def _ensure_database(self) -> None:
        try:
            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                dbname="postgres",
                connect_timeout=5,
                autocommit=True,
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
                ).fetchone()
                if exists is None:
                    try:
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                    except (pg_errors.DuplicateDatabase, pg_errors.UniqueViolation):
                        pass  # created concurrently by another process
        except psycopg.Error as exc:
            raise ServiceError(
                f"Postgres is running on {self.host}:{self.port} but database "
                f"{self.database!r} could not be created: {exc}. See {self.log_file}."
            ) from exc
