"""The vector memory: an agent's view writes to its scope and searches its scope plus ``shared``."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alina._secrets import mask_secrets, redact_text
from alina.memory_store.embeddings import Embedder, Vectors, normalise
from alina.memory_store.vector._chroma import Collections
from alina.memory_store.vector._config import KINDS, SHARED, VectorConfig, build_embedder
from alina.memory_store.vector._items import SCOPE_RE, MemoryHit, MemoryItem, unique_hits

__all__ = ["VectorMemory"]

log = logging.getLogger("alina.memory_store.vector")


class _Health:
    """Whether retrieval works, shared by a memory's views: the first failure disables retrieval
    for all of them and is logged once (the runs go on without memory)."""

    MAX_TIMEOUTS = 3

    def __init__(self) -> None:
        self.disabled: str | None = None
        self.consecutive_timeouts = 0

    def disable(self, memory: VectorMemory, cause: BaseException | str) -> None:
        from alina.monitoring.memory_metrics import set_memory_available

        if self.disabled is not None:
            return
        reason = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        self.disabled = reason.strip().splitlines()[0][:300] if reason.strip() else "unknown error"
        set_memory_available(False)
        log.warning(
            "memory retrieval disabled, runs go on without it: %s (%s, embedder %s)",
            self.disabled,
            memory.location(),
            memory.embedder.name,
        )

    def timed_out(self, memory: VectorMemory, limit_s: float) -> None:
        self.consecutive_timeouts += 1
        if self.consecutive_timeouts == 1:
            log.warning("memory retrieval took longer than %gs and was skipped for this model call", limit_s)
        if self.consecutive_timeouts >= self.MAX_TIMEOUTS:
            self.disable(memory, f"{self.consecutive_timeouts} retrievals in a row took over {limit_s:g}s")


# -- the memory ----------------------------------------------------------------------------------
class VectorMemory:
    """Semantic memory on Chroma (an agent uses it through :class:`alina.agents.AgentMemory`).

    ``VectorMemory(config)`` is the unscoped root (writes to ``shared``, searches every scope);
    ``root.for_agent("trader")`` is the trader's view (writes to ``trader``, searches ``trader``
    and ``shared``). Views share one client, its collections and the embedder. ``close()``
    releases the client and never deletes anything.
    """

    def __init__(
        self,
        config: VectorConfig | None = None,
        *,
        embedder: Embedder | None = None,
        base_dir: Path | None = None,
        client: Any = None,
    ) -> None:
        self.config = config or VectorConfig()
        self.embedder: Embedder = embedder or build_embedder(self.config.embedding)
        self.agent: str | None = None
        self.retrieve_kinds: tuple[str, ...] | None = None
        """The kinds :meth:`update_context` retrieves (None: every kind); see :meth:`for_agent`."""
        self._cols = Collections(self.config, self.embedder.name, base_dir, client)
        self._health = _Health()

    def for_agent(self, agent: str, *, kinds: Sequence[str] | None = None) -> VectorMemory:
        """A view for ``agent``: writes default to its scope; searches see its scope and shared.
        ``kinds``: the kinds its retrieval before a model call (:meth:`update_context`) returns
        (None: every kind); an explicit :meth:`search` is not filtered by it."""
        if agent == SHARED or not SCOPE_RE.match(agent):
            raise ValueError(
                f"an agent view needs an agent name other than {SHARED!r}: letters, digits, '_' or '-' "
                f"(got {agent!r})"
            )
        unknown = sorted(set(kinds or ()) - set(KINDS))
        if unknown:
            raise ValueError(f"memory kinds must be among {', '.join(KINDS)} (got {unknown})")
        view = copy.copy(self)  # shallow: the same collection handle and embedder
        view.agent = agent
        view.retrieve_kinds = tuple(kinds) if kinds is not None else None
        return view

    @property
    def scope(self) -> str:
        """Where :meth:`add` writes by default: the agent's name, or ``shared`` for the root."""
        return self.agent or SHARED

    def default_scopes(self) -> list[str] | None:
        """The scopes searched by default: ``[agent, shared]``, or None (all) for the root."""
        return [self.agent, SHARED] if self.agent else None

    async def open(self) -> None:
        """Open the collections and load the embedding model now, not on the first model call.

        Raises VectorStoreError / VectorStoreUnavailableError / EmbedderUnavailableError.
        """
        scopes = {self.scope, SHARED}
        await self._cols.run(lambda: [self._cols.get(s, create=True) for s in scopes])
        load = getattr(self.embedder, "load", None)
        if load is not None:
            await load()

    # -- writes ----------------------------------------------------------------------------------
    async def add_many(self, items: Sequence[MemoryItem], vectors: Any = None) -> list[str]:
        """Store ``items`` (upsert by id within a scope), embedding them in batches unless
        ``vectors`` are given. Returns the ids. ``vectors`` (one row per item) are L2-normalised.
        Every write to Chroma passes here: texts and metadata are stored with secrets masked."""
        if not items:
            return []
        texts = [redact_text(i.text) for i in items]
        vecs = await self.embedder.embed(texts) if vectors is None else normalise(vectors)
        if len(vecs) != len(items):
            raise ValueError(f"got {len(vecs)} vectors for {len(items)} items")
        by_scope: dict[str, list[int]] = {}
        for n, item in enumerate(items):
            by_scope.setdefault(item.scope, []).append(n)

        def upsert() -> None:
            for scope, rows in by_scope.items():
                col, step = self._cols.get(scope, create=True), self._cols.max_batch
                for s in range(0, len(rows), step):
                    part = rows[s : s + step]
                    col.upsert(
                        ids=[items[r].id for r in part],
                        embeddings=vecs[part],
                        documents=[texts[r] for r in part],
                        metadatas=[mask_secrets(items[r].metadata()) for r in part],
                    )

        await self._cols.run(upsert)
        return [i.id for i in items]

    async def remember(
        self,
        text: str,
        *,
        kind: str = "note",
        scope: str | None = None,
        run_id: str | None = None,
        message_seq: int | None = None,
        id: str | None = None,  # the memory's id
    ) -> str:
        """Store one memory (default scope: this view's); returns its id."""
        item = MemoryItem(text, kind, scope or self.scope, run_id, message_seq, id=id or "")
        return (await self.add_many([item]))[0]

    # -- reads -----------------------------------------------------------------------------------
    async def search(
        self,
        query: str | Sequence[float] | np.ndarray,
        *,
        scopes: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        top_k: int | None = None,
        min_score: float | None = None,
    ) -> list[MemoryHit]:
        """The memories closest to ``query`` (text, or a precomputed vector), best first.

        Filters by ``scopes`` (default :meth:`default_scopes`) and ``kinds``; at most ``top_k``
        hits (default ``config.top_k``), none scoring below ``min_score`` (default
        ``config.min_score``; pass -1 for no threshold).
        """
        if isinstance(query, str):
            vector: Vectors = await self.embedder.embed([query])
        else:
            vector = normalise(query)
        return await self._search_vector(vector[0], scopes, kinds, top_k, min_score)

    async def _search_vector(
        self,
        vector: Vectors,
        scopes: Sequence[str] | None,
        kinds: Sequence[str] | None,
        top_k: int | None,
        min_score: float | None,
    ) -> list[MemoryHit]:
        wanted = scopes if scopes is not None else self.default_scopes()
        where = {"kind": {"$in": list(kinds)}} if kinds is not None else None
        k = top_k or self.config.top_k
        floor = self.config.min_score if min_score is None else min_score

        def query() -> list[MemoryHit]:
            hits: list[MemoryHit] = []
            for scope in wanted if wanted is not None else self._cols.scopes():
                col = self._cols.get(scope, create=False)
                if col is None:
                    continue
                res = col.query(
                    query_embeddings=[vector],
                    n_results=k,
                    where=where,
                    include=["documents", "metadatas", "distances"],
                )
                hits += map(
                    MemoryHit.from_chroma,
                    res["ids"][0],
                    res["documents"][0],
                    res["metadatas"][0],
                    res["distances"][0],
                )
            hits.sort(key=lambda h: -h.score)
            return hits[:k]

        return [h for h in await self._cols.run(query) if h.score >= floor]

    @property
    def source(self) -> str:
        """The name of this view's retrieved block in a context: ``collection:scope``."""
        return f"{self.config.collection}:{self.scope}"

    async def retrieve(self, text: str) -> list[MemoryHit] | None:
        """The memories for a model call whose latest message is ``text`` (deduplicated, best
        first; only :attr:`retrieve_kinds`), or None when retrieval is off or failed this time.

        Fails open (it runs before every model call of an agent): a retrieval slower than
        ``config.retrieval_timeout_s`` is skipped; an error of the store or the embedder is
        logged once and disables retrieval for every view of this memory (three timeouts in a
        row too), and the model call goes on without memory. :meth:`search` itself raises.
        """
        from alina.monitoring.memory_metrics import observe_retrieval

        if self._health.disabled is not None:
            observe_retrieval("disabled")
            return None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.retrieval_timeout_s):
                hits = await self.search(text, kinds=self.retrieve_kinds) if text else []
            hits = unique_hits(hits)
        except TimeoutError:
            observe_retrieval("timeout", time.perf_counter() - t0)
            self._health.timed_out(self, self.config.retrieval_timeout_s)
            return None
        except Exception as exc:  # fail open: the model call goes on without memory
            observe_retrieval("error", time.perf_counter() - t0)
            self._health.disable(self, exc)
            return None
        self._health.consecutive_timeouts = 0
        observe_retrieval("ok" if hits else "empty", time.perf_counter() - t0)
        return hits

    @property
    def retrieval_disabled(self) -> str | None:
        """Why retrieval was disabled (fail-open), or None while it works."""
        return self._health.disabled

    def disable_retrieval(self, reason: str) -> None:
        """Turn retrieval off for every view of this memory (logged once, ``alina_memory_available`` 0)."""
        self._health.disable(self, reason)

    async def count(self, scopes: Sequence[str] | None = None) -> int:
        """How many memories are stored (in ``scopes``; default every scope)."""

        def count() -> int:
            cols = [self._cols.get(s, create=False) for s in (scopes or self._cols.scopes())]
            return sum(int(c.count()) for c in cols if c is not None)

        return await self._cols.run(count)

    async def breakdown(self) -> dict[str, dict[str, int]]:
        """Counts of stored memories ``{"scope": {name: n}, "kind": {name: n}}`` (reads all metadata)."""
        out: dict[str, dict[str, int]] = {"scope": {}, "kind": {}}

        def tally() -> None:
            for scope in self._cols.scopes():
                col, page = self._cols.get(scope, create=False), 5000
                out["scope"][scope] = total = int(col.count())
                for offset in range(0, total, page):
                    for meta in col.get(include=["metadatas"], limit=page, offset=offset)["metadatas"]:
                        kind = str((meta or {}).get("kind", "?"))
                        out["kind"][kind] = out["kind"].get(kind, 0) + 1

        await self._cols.run(tally)
        return out

    async def delete(self, ids: Sequence[str]) -> None:
        """Delete memories by id (unknown ids are ignored)."""

        def delete() -> None:
            for scope in self._cols.scopes():
                self._cols.get(scope, create=False).delete(ids=list(ids))

        if ids:
            await self._cols.run(delete)

    async def expire(self, before: float, *, dry_run: bool = False) -> int:
        """Delete the memories created before ``before`` (unix seconds), in every scope; returns
        how many were deleted (with ``dry_run``, how many would be, deleting nothing)."""

        def expire() -> int:
            total = 0
            for scope in self._cols.scopes():
                col = self._cols.get(scope, create=False)
                if col is None:
                    continue
                ids = col.get(where={"created_at": {"$lt": before}}, include=[])["ids"]
                total += len(ids)
                if not dry_run:
                    for s in range(0, len(ids), self._cols.max_batch):
                        col.delete(ids=ids[s : s + self._cols.max_batch])
            return total

        return await self._cols.run(expire)

    async def clear(self) -> None:
        """Delete every memory in this view's own scope (:attr:`scope`)."""
        scope = self.scope
        await self._cols.run(lambda: self._cols.forget(scope))

    async def close(self) -> None:
        """Release the Chroma client (shared by all views). Stored memories are kept."""
        self._cols.close()

    def data_path(self) -> Path | None:
        """The persistent client's data directory, or None for a Chroma server."""
        return self._cols.data_path() if self.config.backend == "persistent" else None

    def location(self) -> str:
        """Where the vectors live, for messages: ``chroma at PATH`` or ``chroma at HOST:PORT``."""
        return self._cols.where()
