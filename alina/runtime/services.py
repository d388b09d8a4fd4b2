"""Local Postgres and Redis servers on loopback, with their data in a project-local folder.

Used by ``alina up`` / ``alina down`` and by the integration-test fixtures. Both services are
started as daemons and stay up after this process exits; ``stop()`` shuts them down. Every wait
has a timeout, and every error says what the operator should do.

Postgres: ``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
OS user (``runuser -u postgres --``), which must be able to traverse every parent directory of
the data directory.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

__all__ = [
    "PortInUseError",
    "PostgresService",
    "RedisService",
    "ServiceError",
    "describe_port_holder",
    "find_pg_bindir",
    "ensure_traversable",
    "port_is_free",
]

logger = logging.getLogger(__name__)

_SETUP_HINT = "run `make setup`"
# sockaddr_un.sun_path holds 108 bytes including the trailing NUL.
_MAX_UNIX_SOCKET_PATH = 107


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says what to do."""


class PortInUseError(ServiceError):
    """The configured port is held by a process that is not this service."""


# --------------------------------------------------------------------------------------------
# process and port helpers


def port_is_free(host: str, port: int) -> bool:
    """Return True if ``host:port`` can be bound the way Postgres and Redis bind it.

    ``SO_REUSEADDR`` is set like the servers do, so TIME_WAIT leftovers of a previous run do not
    count as "in use", while a listening socket (or one bound without reuse) does.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return True
    for family, socktype, proto, _canon, addr in infos:
        with socket.socket(family, socktype, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(addr)
            except OSError:
                return False
    return True


def describe_port_holder(port: int) -> str | None:
    """Best effort: "pid N (name)" of the process listening on TCP ``port``, or None.

    Reads ``/proc`` (Linux only); sockets of other users are only visible to root.
    """
    inodes = _socket_inodes(port)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in targets:
                    return f"pid {proc.name} ({_proc_name(int(proc.name))})"
        except OSError:
            continue
    return None


def _socket_inodes(port: int) -> set[str]:
    listening: set[str] = set()
    other: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[9] == "0":
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) != port:
                continue
            (listening if fields[3] == "0A" else other).add(fields[9])
    return listening or other


def _proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "unknown"


def _pid_alive(pid: int, name_prefixes: tuple[str, ...] = ()) -> bool:
    """True if ``pid`` runs (not a zombie) and, when known, its name starts with a prefix."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): trust kill(0)
    # The daemons are re-parented to PID 1, which may not reap them in a container.
    if stat_line.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return not name_prefixes or _proc_name(pid).startswith(name_prefixes)


def _processes_in(directory: Path, name_prefixes: tuple[str, ...]) -> list[int]:
    """Live processes whose working directory is ``directory`` (Postgres backends chdir to PGDATA)."""
    found: list[int] = []
    target = str(directory)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "cwd") != target:
                continue
        except OSError:
            continue
        if _pid_alive(int(proc.name), name_prefixes):
            found.append(int(proc.name))
    return found


def _wait_until_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


def _tail(path: Path, lines: int = 15, start: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run(cmd: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    # cwd="/" because the postgres user may not be allowed to enter our working directory.
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(
            f"{what} did not finish within {timeout:.0f}s (command: {shlex.join(cmd)})."
        ) from exc
    except FileNotFoundError as exc:
        raise ServiceError(f"{what}: program not found ({exc.filename}); {_SETUP_HINT}.") from exc


def _port_in_use(service: str, host: str, port: int, data_dir: Path, config_key: str) -> str:
    holder = describe_port_holder(port) or "another process"
    env = "ALINA__" + config_key.upper().replace(".", "__")
    return (
        f"port {port} on {host} is already in use by {holder}, which is not the Alina {service} "
        f"of {data_dir}. Stop that process, or choose a free port: set {config_key} in "
        f"config.yaml or {env}=<port>."
    )


def ensure_traversable(path: Path, user: str, *, fix: bool = False) -> list[Path]:
    """Make sure OS ``user`` can enter every existing ancestor directory of ``path``.

    With ``fix=False`` a blocking directory raises ServiceError naming it and the command that
    fixes it. With ``fix=True`` the blocking directories get ``chmod o+x`` (logged as a warning)
    and are returned. Returns the directories changed (empty when nothing was needed).
    """
    try:
        pw = pwd.getpwnam(user)
    except KeyError as exc:
        raise ServiceError(
            f"OS user {user!r} does not exist; it is needed to run Postgres as root. "
            f"Create it (`useradd --system {user}`) or run alina as a non-root user."
        ) from exc
    groups = set(os.getgrouplist(user, pw.pw_gid))
    blocked: list[Path] = []
    for parent in reversed(path.absolute().parents):
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == pw.pw_uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid in groups:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            blocked.append(parent)
    if blocked and not fix:
        first = blocked[0]
        mode = stat.filemode(first.stat().st_mode)
        raise ServiceError(
            f"Postgres runs as OS user {user!r}, which cannot enter {first} ({mode}), a parent "
            f"of the data directory {path}. Either allow it: "
            f"`chmod o+x {' '.join(shlex.quote(str(d)) for d in blocked)}`, or move the data "
            f"directory (set postgres.data_dir in config.yaml) to a path {user!r} can reach, "
            f"e.g. /var/lib/alina/postgres."
        )
    for directory in blocked:
        directory.chmod(directory.stat().st_mode | stat.S_IXOTH)
        logger.warning("chmod o+x %s so that user %s can reach %s", directory, user, path)
    return blocked


# --------------------------------------------------------------------------------------------
# Postgres


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
        return info is not None and _pid_alive(info[0], ("postgres", "postmaster"))

    def running_port(self) -> int | None:
        """Port of the running postmaster of this data directory, or None if it is not running."""
        info = self._pid_file()
        if info is None or not _pid_alive(info[0], ("postgres", "postmaster")):
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
                _port_in_use("postgres", self.host, self.port, self.data_dir, "postgres.port")
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
        result = _run(cmd, timeout=wait + 10, what="pg_ctl stop")
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
        if info is None or _pid_alive(info[0], ("postgres", "postmaster")) or not Path("/proc").is_dir():
            return
        # Orphaned backends notice the postmaster's death and exit on their own; give them time.
        deadline = time.monotonic() + 10
        while (leftovers := _processes_in(self.data_dir, ("postgres",))) and time.monotonic() < deadline:
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
                f"PostgreSQL server programs (initdb, pg_ctl) not found{where}; {_SETUP_HINT} "
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
                str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
                "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
            ]
        )  # fmt: skip
        result = _run(cmd, timeout=self.timeout, what="initdb")
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
                str(bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                "-w", "-t", str(wait), "-o", self._server_options(), "start",
            ]
        )  # fmt: skip
        result = _run(cmd, timeout=wait + 15, what="pg_ctl start")
        if result.returncode == 0 and self.is_running():
            return
        log = _tail(self.log_file, start=log_start)
        if "could not bind" in log and "in use" in log:
            raise PortInUseError(
                _port_in_use("postgres", self.host, self.port, self.data_dir, "postgres.port")
            )
        raise ServiceError(
            f"Postgres did not start on {self.host}:{self.port}: "
            f"{(result.stderr or result.stdout).strip()[-400:]}\n{log}\n(full log: {self.log_file})"
        )

    def _ensure_database(self) -> None:
        try:
            with psycopg.connect(
                host=self.host, port=self.port, user=self.user, dbname="postgres",
                connect_timeout=5, autocommit=True,
            ) as conn:  # fmt: skip
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


# --------------------------------------------------------------------------------------------
# Redis


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
        return pid is not None and _pid_alive(pid, ("redis",))

    def start(self) -> str:
        """Start redis-server as a daemon and wait until it answers PING.

        Idempotent: returns ``"started"`` or ``"already running"``. Raises PortInUseError if the
        port is held by something else, ServiceError if redis-server is missing or fails.
        """
        server = shutil.which(self.server_bin)
        if server is None:
            raise ServiceError(
                f"{self.server_bin} not found on PATH; {_SETUP_HINT} "
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
            raise PortInUseError(_port_in_use("redis", self.host, self.port, self.data_dir, "redis.port"))
        self.pid_file.unlink(missing_ok=True)  # stale: its process is gone
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        cmd = [
            server, "--port", str(self.port), "--bind", self.host, "--daemonize", "yes",
            "--save", "", "--appendonly", "no", "--dir", str(self.data_dir),
            "--pidfile", str(self.pid_file), "--logfile", str(self.log_file),
        ]  # fmt: skip
        result = _run(cmd, timeout=self.timeout, what="redis-server")
        if result.returncode != 0:
            raise ServiceError(
                f"redis-server failed to start: {(result.stderr or result.stdout).strip()}\n"
                f"{_tail(self.log_file, start=log_start)}"
            )
        self._wait_ready(log_start)
        return "started"

    def stop(self) -> str:
        """Shut redis-server down without saving. Idempotent: ``"stopped"`` or ``"not running"``."""
        pid = self._pid()
        if pid is None or not _pid_alive(pid, ("redis",)):
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        cli = shutil.which(self.cli_bin)
        # Only talk to the port if our process is the one answering there: never shut down a
        # foreign Redis that took over the configured port.
        used_cli = False
        if cli is not None and _redis_server_pid(self.host, self.port) == pid:
            _run(
                [cli, "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
                timeout=self.timeout,
                what="redis-cli shutdown",
            )
            used_cli = True
        if _pid_alive(pid) and not _wait_until_dead(pid, 2.0 if used_cli else 0.0):
            # No redis-cli, or the server listens elsewhere: SIGTERM also shuts down cleanly.
            os.kill(pid, signal.SIGTERM)
        if not _wait_until_dead(pid, self.timeout):
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
            log = _tail(self.log_file, start=log_start)
            if "Address already in use" in log:
                raise PortInUseError(_port_in_use("redis", self.host, self.port, self.data_dir, "redis.port"))
            if "aborting" in log.lower() or "Fatal" in log:
                raise ServiceError(f"redis-server failed to start:\n{log}\n(log: {self.log_file})")
            time.sleep(0.05)
        raise ServiceError(
            f"redis-server did not answer on {self.host}:{self.port} within {self.timeout:.0f}s:\n"
            f"{_tail(self.log_file, start=log_start)}\n(log: {self.log_file})"
        )
