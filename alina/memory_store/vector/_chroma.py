"""Chroma access: one collection per scope, opened lazily, every call in a worker thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alina.settings.memory import VectorConfig

__all__ = ["Collections", "VectorStoreError", "VectorStoreUnavailableError"]

log = logging.getLogger("alina.memory_store.vector")
T = TypeVar("T")


class VectorStoreError(RuntimeError):
    """The vector collection cannot be used as configured; the operator must fix the config."""


class VectorStoreUnavailableError(VectorStoreError):
    """The Chroma server cannot be reached; the operator must start it (or retry later)."""


class Collections:
    """One Chroma collection per scope (``NAME__trader``, ``NAME__shared``, ...), opened lazily.

    Why not one collection with a scope filter: Chroma answers a filtered query by scanning the
    matching rows (about 30 ms at 20k memories, 180 ms at 100k on this machine), while an
    unfiltered HNSW query takes 1-2 ms. An agent's retrieval is two unfiltered queries (its scope
    and ``shared``) merged by score. Every method here is blocking: call it through :meth:`run`.
    """

    def __init__(self, config: VectorConfig, embedder_name: str, base_dir: Path | None, client: Any) -> None:
        self.config = config
        self.embedder_name = embedder_name
        self.base_dir = base_dir
        self.prefix = f"{config.collection}__"
        self._client = client
        self._cols: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.max_batch = 4096

    def where(self) -> str:
        c = self.config
        return f"chroma at {c.host}:{c.port}" if c.backend == "http" else f"chroma at {self.data_path()}"

    def data_path(self) -> Path:
        path = Path(self.config.path)
        return path if path.is_absolute() or self.base_dir is None else self.base_dir / path

    async def run(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a worker thread; connection failures become VectorStoreUnavailableError."""
        import httpx

        try:
            return await asyncio.to_thread(fn)
        except (httpx.TransportError, ConnectionError) as exc:
            raise VectorStoreUnavailableError(
                f"cannot reach {self.where()} ({type(exc).__name__}: {exc}); is the Chroma server "
                "running? (memory.host / memory.port in config.yaml)"
            ) from exc

    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
                self.max_batch = max(1, min(4096, int(self._client.get_max_batch_size())))
            return self._client

    def _connect(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        if self.config.backend == "http":
            try:
                return chromadb.HttpClient(host=self.config.host, port=self.config.port, settings=settings)
            except ValueError as exc:  # chromadb's "Could not connect to a Chroma server"
                raise ConnectionError(str(exc)) from exc
        path = self.data_path()
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)

    def scopes(self) -> list[str]:
        """Every scope that has a collection."""
        names = [c.name for c in self.client().list_collections()]
        return sorted(n[len(self.prefix) :] for n in names if n.startswith(self.prefix))

    def get(self, scope: str, *, create: bool) -> Any:
        """The collection of ``scope``; None if it does not exist and ``create`` is False."""
        col = self._cols.get(scope)
        if col is not None:
            return col
        client, name = self.client(), self.prefix + scope
        if create:
            # embedding_function=None: vectors always come from our embedder; Chroma's default
            # function would download its ONNX model on first use.
            col = client.get_or_create_collection(
                name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedder": self.embedder_name},
                embedding_function=None,
            )
        else:
            from chromadb.errors import NotFoundError

            try:
                col = client.get_collection(name, embedding_function=None)
            except NotFoundError:
                return None
        self._check(name, col)
        with self._lock:
            return self._cols.setdefault(scope, col)

    def forget(self, scope: str) -> None:
        """Drop ``scope``'s collection and everything in it."""
        with self._lock:
            self._cols.pop(scope, None)
        if self.prefix + scope in {c.name for c in self.client().list_collections()}:
            self.client().delete_collection(self.prefix + scope)

    def _check(self, name: str, col: Any) -> None:
        # configuration_json: the parsed `configuration` warns about the "legacy" EF entry that
        # embedding_function=None leaves behind.
        space = ((col.configuration_json or {}).get("hnsw") or {}).get("space")
        if space != "cosine":
            raise VectorStoreError(
                f"collection {name!r} in {self.where()} uses {space!r} distance, not cosine, so scores "
                "would not be similarities: choose another memory.collection"
            )
        bound = (col.metadata or {}).get("embedder")
        if bound is None:
            col.modify(metadata={**(col.metadata or {}), "embedder": self.embedder_name})
        elif bound != self.embedder_name:
            raise VectorStoreError(
                f"collection {name!r} in {self.where()} holds vectors of embedder {bound!r}, but "
                f"memory.embedding gives {self.embedder_name!r}: vectors of two models are not "
                "comparable. Use a new memory.collection or the original embedder."
            )

    def close(self) -> None:
        with self._lock:
            self._cols.clear()
            client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception as exc:  # closing must not mask the caller's own error
                log.debug("closing the chroma client failed: %s", exc)
