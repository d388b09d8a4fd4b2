"""Semantic similarity for the router: sentence embeddings of a request against each agent's
``description`` and ``examples`` (the same MiniLM model the vector memory uses).

The router asks :class:`SemanticScorer` only when its rules are not decisive. The scorer never
makes the router fail: without an embedder, or when the embedding model cannot load (the
package is missing, the Ollama server is down...), it answers ``None`` and the router keeps
its lexical BM25 scoring; the failure is logged once per embedder. The default embedder
(:func:`shared_embedder`) is all-MiniLM-L6-v2 in process, loaded offline on first use and
shared by every router of the process and with the vector memory (one loaded model per
process: :func:`alina.memory_store.embeddings.shared_sentence_transformer`); it counts as a
model, so it is blocked wherever real model requests are
(:func:`alina.models.allow_model_requests`, e.g. in unit tests, which inject a deterministic
fake instead).

Embeddings are computed synchronously on a cache miss when the embedder offers
``embed_sync`` (``alina route``, benchmarks), or, inside the team, ahead of the decision in a
worker thread: :meth:`Router.route` decides once with :meth:`SemanticScorer.deferred` (misses
are only noted), awaits :meth:`SemanticScorer.prepare`, and decides again.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from alina.memory_store.embeddings import Embedder, Vectors
    from alina.team._routing import AgentProfile

log = logging.getLogger(__name__)

SEMANTIC_TEMPERATURE = 0.05
"""Softmax temperature over cosine similarities: a lead of 0.05 in cosine is a factor e."""
_CACHE_SIZE = 2048
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str, *args: Any) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(message, *args)


class _SharedMiniLM:
    """all-MiniLM-L6-v2 for routing, loaded lazily once per process (each scorer caches vectors).

    Blocked (``RealModelCallBlocked``) where real model requests are disabled; a failed load is
    remembered, so later routers fall back to lexical scoring at once instead of retrying.
    """

    name = "all-minilm-l6-v2"

    def __init__(self) -> None:
        self._inner: Any = None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        from alina.models import RealModelCallBlocked, model_requests_allowed

        if not model_requests_allowed():
            raise RealModelCallBlocked("embedding model blocked: model requests are disabled")
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._inner is None:
                try:
                    from alina.memory_store.embeddings import SentenceTransformerEmbedder

                    self._inner = SentenceTransformerEmbedder()
                except Exception as exc:  # an import failure (numpy, torch) must not break routing
                    self._error = exc
                    raise
            return self._inner

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        inner = self._model()
        try:
            return inner.embed_sync(texts)
        except Exception as exc:
            from alina.memory_store.embeddings import EmbedderUnavailableError

            if isinstance(exc, EmbedderUnavailableError | ImportError | OSError):
                with self._lock:
                    self._error = exc  # the model cannot load: do not try again
            raise

    async def embed(self, texts: Sequence[str]) -> Vectors:
        import asyncio

        return await asyncio.to_thread(self.embed_sync, texts)


_SHARED = _SharedMiniLM()


def shared_embedder() -> Embedder:
    """The process-wide routing embedder (MiniLM, loaded on first use, never downloaded)."""
    return _SHARED


class SemanticScorer:
    """Cosine similarity between a text and each agent's description and examples.

    An agent's score is its best document's cosine (one close example is enough); confidence is
    a softmax over the compared agents' scores, so it is high only when one agent clearly leads.
    """

    def __init__(
        self,
        profiles: Sequence[AgentProfile],
        embedder: Embedder | None,
        *,
        temperature: float = SEMANTIC_TEMPERATURE,
    ) -> None:
        self.embedder = embedder
        self.temperature = temperature
        self.names = [p.name for p in profiles]
        self._owners: list[str] = []
        self._texts: list[str] = []
        for p in profiles:
            for text in (p.description, *p.examples):
                self._owners.append(p.name)
                self._texts.append(text)
        self._doc_vectors: Vectors | None = None
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._defer = False
        self.missing: list[str] = []
        """Texts asked for while deferred and not embedded yet (:meth:`prepare` embeds them)."""
        self.failed = embedder is None
        """True without an embedder or once it failed: the router uses lexical scoring only."""

    @property
    def active(self) -> bool:
        return not self.failed

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside: a cache miss is noted in :attr:`missing` and answered ``None``, never computed."""
        before, self._defer = self._defer, True
        try:
            yield
        finally:
            self._defer = before

    # -- embedding ---------------------------------------------------------------------------
    def _failure(self, exc: Exception) -> None:
        from alina.models import RealModelCallBlocked

        if isinstance(exc, RealModelCallBlocked):
            log.debug("semantic routing skipped: %s", exc)  # blocked now, may be allowed later
            return
        self.failed = True
        name = getattr(self.embedder, "name", type(self.embedder).__name__)
        _warn_once(
            f"{name}:{type(exc).__name__}",
            "semantic routing disabled, using lexical similarity only: embedder %s failed (%s: %s)",
            name,
            type(exc).__name__,
            exc,
        )

    def _store(self, texts: Sequence[str], vectors: Any) -> None:
        from alina.memory_store.embeddings import normalise

        rows = normalise(vectors)
        if rows.shape[0] != len(texts):
            raise ValueError(f"embedder returned {rows.shape[0]} vectors for {len(texts)} texts")
        for text, row in zip(texts, rows, strict=True):
            self._cache[text] = row
            self._cache.move_to_end(text)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _wanted(self, texts: Sequence[str]) -> list[str]:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if self._doc_vectors is None:
            todo = [t for t in self._texts if t not in self._cache] + todo
        return list(dict.fromkeys(todo))

    def _finish_docs(self) -> None:
        if self._doc_vectors is None and all(t in self._cache for t in self._texts):
            self._doc_vectors = np.stack([self._cache[t] for t in self._texts])

    def _embed_now(self, text: str) -> bool:
        """Embed ``text`` (and the agents' documents, the first time) synchronously."""
        embed_sync = getattr(self.embedder, "embed_sync", None)
        if embed_sync is None:
            return False  # an async-only embedder: the team prepares ahead (deferred)
        todo = self._wanted([text])
        try:
            if todo:
                self._store(todo, embed_sync(todo))
        except Exception as exc:
            self._failure(exc)
            return False
        self._finish_docs()
        return True

    async def prepare(self, texts: Sequence[str] = ()) -> None:
        """Embed ``texts`` and everything noted in :attr:`missing`, in one batch (in a worker
        thread for the local model). Fail-open: on error the scorer is disabled, never raises
        (except ``RealModelCallBlocked`` being swallowed too: semantic is skipped this time)."""
        pending = [*self.missing, *texts]
        self.missing = []
        if self.failed or self.embedder is None:
            return
        todo = self._wanted(pending)
        if not todo:
            self._finish_docs()
            return
        try:
            self._store(todo, await self.embedder.embed(todo))
        except Exception as exc:
            self._failure(exc)
            return
        self._finish_docs()

    # -- scoring -----------------------------------------------------------------------------
    def scores(self, text: str) -> dict[str, float] | None:
        """Each agent's best cosine similarity to ``text``; None when no embedding is at hand."""
        if self.failed or not text.strip():
            return None
        if text not in self._cache or self._doc_vectors is None:
            if self._defer:
                self.missing.append(text)
                return None
            if not self._embed_now(text) or text not in self._cache or self._doc_vectors is None:
                return None
        self._cache.move_to_end(text)
        sims = self._doc_vectors @ self._cache[text]
        best = dict.fromkeys(self.names, -1.0)
        for owner, s in zip(self._owners, sims.tolist(), strict=True):
            if s > best[owner]:
                best[owner] = float(s)
        return best

    def rank(
        self, text: str, among: Collection[str] | None = None
    ) -> tuple[list[tuple[str, float]], float] | None:
        """Agents (``among``, default all) by cosine, best first, and the confidence of the first
        (its softmax share at :attr:`temperature`); None when no embedding is at hand."""
        best = self.scores(text)
        if best is None:
            return None
        ranked = sorted(
            ((n, s) for n, s in best.items() if among is None or n in among), key=lambda kv: -kv[1]
        )
        if not ranked:
            return None
        top = ranked[0][1]
        exps = [math.exp((s - top) / self.temperature) for _, s in ranked]
        return ranked, exps[0] / sum(exps)
