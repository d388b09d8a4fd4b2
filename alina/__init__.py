"""AgentAlina: a self-hosted team of AI agents on local models."""

from alina._secrets import install_log_redaction

__version__ = "0.1.0"

# Whatever imports the package (CLI, notebook, test), no log record carries a secret.
install_log_redaction()
