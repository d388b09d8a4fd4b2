"""The ``memory:`` settings (defined in :mod:`alina.settings.memory`) and the embedder they name."""

from __future__ import annotations

from alina.memory_store.embeddings import Embedder, OllamaEmbedder, SentenceTransformerEmbedder
from alina.settings.memory import KINDS, SHARED, EmbeddingConfig, Kind, VectorConfig

__all__ = ["KINDS", "SHARED", "EmbeddingConfig", "Kind", "VectorConfig", "build_embedder"]


def build_embedder(config: EmbeddingConfig) -> Embedder:
    """The embedder ``config`` names (not loaded yet: the local model loads on first use)."""
    if config.provider == "ollama":
        return OllamaEmbedder(
            config.model, base_url=config.base_url, timeout_s=config.timeout_s, batch_size=config.batch_size
        )
    return SentenceTransformerEmbedder(batch_size=config.batch_size)
