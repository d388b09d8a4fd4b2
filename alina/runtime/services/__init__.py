"""Local Postgres and Redis servers on loopback, with their data in a project-local folder.

Used by ``alina up`` / ``alina down`` and by the integration-test fixtures. Both services are
started as daemons and stay up after this process exits; ``stop()`` shuts them down. Every wait
has a timeout, and every error says what the operator should do.

Postgres: ``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
OS user (``runuser -u postgres --``), which must be able to traverse every parent directory of
the data directory.

The modules: ``_processes`` (ports and processes, on psutil), ``_common`` (errors and helpers
both services share), ``postgres`` and ``redis`` (one per service).
"""

from alina.runtime.services._common import PortInUseError, ServiceError, ensure_traversable
from alina.runtime.services._processes import describe_port_holder, port_is_free
from alina.runtime.services.postgres import PostgresService, find_pg_bindir
from alina.runtime.services.redis import RedisService

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
