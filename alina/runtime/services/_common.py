"""What both services share: their errors, running a command, log tails, the port-in-use
message, and making the data directory reachable for the ``postgres`` OS user."""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import stat
import subprocess
from pathlib import Path

from alina.runtime.services._processes import describe_port_holder

__all__ = ["PortInUseError", "SETUP_HINT", "ServiceError", "ensure_traversable", "port_in_use", "run", "tail"]

logger = logging.getLogger("alina.runtime.services")

SETUP_HINT = "run `make setup`"


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says what to do."""


class PortInUseError(ServiceError):
    """The configured port is held by a process that is not this service."""


def tail(path: Path, lines: int = 15, start: int = 0) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def run(cmd: list[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
    # cwd="/" because the postgres user may not be allowed to enter our working directory.
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/", check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(
            f"{what} did not finish within {timeout:.0f}s (command: {shlex.join(cmd)})."
        ) from exc
    except FileNotFoundError as exc:
        raise ServiceError(f"{what}: program not found ({exc.filename}); {SETUP_HINT}.") from exc


def port_in_use(service: str, host: str, port: int, data_dir: Path, config_key: str) -> str:
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
