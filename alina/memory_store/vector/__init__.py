"""Retrieval memory (RAG) on Chroma: what is stored, how it is found, and where.

What is stored: short texts of kind ``outcome | decision | lesson | alert | note``, each with its
provenance (``run_id``, ``message_seq``) and a scope (an agent's name or ``"shared"``). An agent's
view (:meth:`VectorMemory.for_agent`) writes to its own scope and retrieves from its own scope
plus ``shared``. Each scope is its own Chroma collection (see :class:`Collections` for why).

Why not AutoGen's ``ChromaDBVectorMemory``: it creates L2 collections while scoring as cosine,
calls Chroma synchronously on the event loop and appends a new system message to the agent's
context on every turn. Here vectors are unit length, the collection uses cosine space (score =
cosine similarity, so ``min_score`` means something), and every Chroma call runs in a worker
thread. The AutoGen side (the ``Memory`` adapter and the ``RetrievalContext`` whose retrieved
block is *replaced* each turn) lives in :mod:`alina.agents`. Every write goes through
:meth:`VectorMemory.add_many`, which masks secrets in the texts and metadata
(:mod:`alina._secrets`) before they are embedded or stored.

The modules: ``_config`` (the ``memory:`` settings and the embedder they name), ``_items``
(what is stored and what comes back), ``_chroma`` (the collections), ``_memory`` (the memory).
"""

from alina.memory_store.vector._chroma import VectorStoreError, VectorStoreUnavailableError
from alina.memory_store.vector._config import (
    KINDS,
    SHARED,
    EmbeddingConfig,
    Kind,
    VectorConfig,
    build_embedder,
)
from alina.memory_store.vector._items import MemoryHit, MemoryItem, render_hits, unique_hits
from alina.memory_store.vector._memory import VectorMemory

__all__ = [
    "KINDS",
    "SHARED",
    "EmbeddingConfig",
    "Kind",
    "MemoryHit",
    "MemoryItem",
    "VectorConfig",
    "VectorMemory",
    "VectorStoreError",
    "VectorStoreUnavailableError",
    "build_embedder",
    "render_hits",
    "unique_hits",
]
