"""AgentAlina: a self-hosted team of AI agents on local models."""

__version__ = "0.1.0"
