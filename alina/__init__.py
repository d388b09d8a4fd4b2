"""AgentAlina: a self-hosted team of AI agents on local models."""

from typing import TYPE_CHECKING, Any

from alina._secrets import install_log_redaction

if TYPE_CHECKING:
    from alina.api import Alina, RunReport, SyncAlina

__version__ = "0.1.0"

# Whatever imports the package (CLI, notebook, test), no log record carries a secret.
install_log_redaction()


__all__ = ["Alina", "RunReport", "SyncAlina", "__version__"]


def __getattr__(name: str) -> Any:
    # `from alina import Alina` loads the application on demand, so `import alina` (the CLI's
    # `config check`, a plugin) stays light.
    if name in ("Alina", "RunReport", "SyncAlina"):
        import alina.api

        return getattr(alina.api, name)
    raise AttributeError(f"module 'alina' has no attribute {name!r}")
