"""Ports and processes, read through psutil: who holds a port, whether a pid is alive, which
processes work in a directory."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import psutil

__all__ = [
    "describe_port_holder",
    "pid_alive",
    "port_is_free",
    "proc_name",
    "processes_in",
    "wait_until_dead",
]


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
    """Best effort: "pid N (name)" of the process listening on TCP ``port`` (else of any socket
    on it), or None. Sockets of other users' processes are only attributed for root."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    held = [c for c in conns if c.laddr and c.laddr.port == port and c.pid]
    listening = [c for c in held if c.status == psutil.CONN_LISTEN]
    for c in listening or held:
        return f"pid {c.pid} ({proc_name(c.pid)})"
    return None


def proc_name(pid: int | None) -> str:
    """The process's name, or "unknown"."""
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, ValueError):
        return "unknown"


def pid_alive(pid: int, name_prefixes: tuple[str, ...] = ()) -> bool:
    """True if ``pid`` runs (not a zombie) and, when known, its name starts with a prefix."""
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        # The daemons are re-parented to PID 1, which may not reap them in a container.
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        return not name_prefixes or proc.name().startswith(name_prefixes)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # it exists; whose it is cannot be told


def processes_in(directory: Path, name_prefixes: tuple[str, ...]) -> list[int]:
    """Live processes whose working directory is ``directory`` (Postgres backends chdir to PGDATA)."""
    target = str(directory)
    return [
        p.pid
        for p in psutil.process_iter(["cwd"], ad_value=None)
        if p.info["cwd"] == target and pid_alive(p.pid, name_prefixes)
    ]


def wait_until_dead(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to end (a zombie counts as ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
