"""VectorMemory on real Chroma: cosine scores, normalisation, scopes, provenance, the Memory
protocol, persistence, both backends (embedded and a real ``chroma run`` server)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import chromadb
import numpy as np
import pytest
from autogen_core.memory import MemoryContent, MemoryMimeType
from chromadb.config import Settings
from pydantic import ValidationError

from alina.agents import AgentMemory
from alina.memory_store.vector import (
    MemoryItem,
    VectorConfig,
    VectorMemory,
    VectorStoreError,
    VectorStoreUnavailableError,
)

from .conftest import ChromaServer, HashEmbedder

TEXTS = [
    "Funding on BTC perpetuals flipped negative; shorts are paying longs.",
    "CPU stayed above 95% for 12 minutes while three agents ran model calls.",
    "Keep position size at half risk when volatility spikes.",
    "The critic rewrote the trader prompt and the rubric score rose to 0.81.",
    "Redis was unreachable for 90 seconds; the cache failed open.",
    "ETH breakout above 2,400 failed within an hour; stopped out for -1R.",
]


def memory(path: Path, embedder: Any, **cfg: Any) -> VectorMemory:
    return VectorMemory(VectorConfig(path=str(path), **cfg), embedder=embedder)


# -- configuration (unit) ----------------------------------------------------------------------
def test_config_defaults_and_validation() -> None:
    cfg = VectorConfig()
    assert (cfg.backend, cfg.collection, cfg.top_k, cfg.embedding.provider) == (
        "persistent",
        "alina_memory",
        5,
        "minilm",
    )
    with pytest.raises(ValidationError, match="got 'st'"):
        VectorConfig(collection="st")
    with pytest.raises(ValidationError):
        VectorConfig(backend="redis")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        VectorConfig(topk=3)  # type: ignore[call-arg]  # misspelt key: extra="forbid"


def test_memory_item_rejects_bad_kind_and_reserved_metadata() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        MemoryItem("x", kind="gossip")
    with pytest.raises(ValueError, match="reserved"):
        MemoryItem("x", extra={"scope": "trader"})
    assert len(MemoryItem("x").id) == 32


# -- Chroma (integration) ----------------------------------------------------------------------


@pytest.mark.integration
async def test_collection_is_cosine_and_scores_are_cosine_similarity(tmp_path: Path, minilm: Any) -> None:
    mem = memory(tmp_path, minilm)
    await mem.open()  # collection and model ready before the first model call
    await mem.add_many([MemoryItem(t, id=f"m{i}") for i, t in enumerate(TEXTS)])
    query = "who pays whom on perpetual swaps when funding is below zero?"
    hits = await mem.search(query, top_k=len(TEXTS), min_score=-1)
    assert [h.id for h in hits][0] == "m0"
    assert len(hits) == len(TEXTS)

    qv = minilm.embed_sync([query])[0]
    stored = {i: v for i, v in zip(*_stored(tmp_path), strict=True)}
    for hit in hits:
        assert hit.score == pytest.approx(float(np.dot(qv, stored[hit.id])), abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    await mem.close()

    raw = chromadb.PersistentClient(path=str(tmp_path), settings=Settings(anonymized_telemetry=False))
    assert sorted(c.name for c in raw.list_collections()) == ["alina_memory__shared"]
    col = raw.get_collection("alina_memory__shared")
    assert col.configuration_json["hnsw"]["space"] == "cosine"
    assert col.metadata["embedder"] == minilm.name


def _stored(path: Path) -> tuple[list[str], list[np.ndarray]]:
    raw = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    got = raw.get_collection("alina_memory__shared").get(include=["embeddings"])
    return got["ids"], [np.asarray(v) for v in got["embeddings"]]


@pytest.mark.integration
async def test_vectors_are_stored_unit_length_even_when_given_unnormalised(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    raw_vectors = rng.normal(size=(4, 16)) * np.array([[0.01], [1.0], [7.0], [300.0]])
    mem = memory(tmp_path, HashEmbedder(16))
    await mem.add_many([MemoryItem(f"item {i}", id=f"v{i}") for i in range(4)], vectors=raw_vectors)
    _, vectors = _stored(tmp_path)
    assert [float(np.linalg.norm(v)) for v in vectors] == pytest.approx([1.0] * 4, abs=1e-5)
    hits = await mem.search(raw_vectors[3] * 5, top_k=1)  # an unnormalised query vector too
    assert hits[0].id == "v3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    opposite = await mem.search(-raw_vectors[3], top_k=4, min_score=-1)
    assert opposite[-1].id == "v3" and opposite[-1].score == pytest.approx(-1.0, abs=1e-5)
    await mem.close()


@pytest.mark.integration
async def test_scopes_agent_sees_own_and_shared_only(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    root = memory(tmp_path, hash_embedder)
    trader, monitor = root.for_agent("trader"), root.for_agent("monitor")
    await trader.remember("btc funding negative note", kind="note", id="t1")
    await monitor.remember("btc funding negative alert", kind="alert", id="mo1")
    await root.remember("btc funding negative lesson", kind="lesson", id="s1")

    def ids(hits: list[Any]) -> set[str]:
        return {h.id for h in hits}

    assert ids(await trader.search("btc funding negative", min_score=-1)) == {"t1", "s1"}
    assert ids(await monitor.search("btc funding negative", min_score=-1)) == {"mo1", "s1"}
    assert ids(await root.search("btc funding negative", min_score=-1)) == {"t1", "mo1", "s1"}
    assert ids(await root.search("btc funding", scopes=["monitor"], min_score=-1)) == {"mo1"}
    assert ids(await root.search("btc funding", kinds=["lesson", "alert"], min_score=-1)) == {"mo1", "s1"}
    hit = (await trader.search("btc funding negative note", top_k=1))[0]
    assert (hit.id, hit.scope, hit.kind) == ("t1", "trader", "note")

    assert await root.count() == 3 and await root.count(["trader", "shared"]) == 2
    raw = chromadb.PersistentClient(path=str(tmp_path), settings=Settings(anonymized_telemetry=False))
    names = {c.name for c in raw.list_collections()}  # one collection per scope: no filtered scans
    assert names == {"alina_memory__trader", "alina_memory__monitor", "alina_memory__shared"}
    await trader.clear()  # only the trader's own scope
    assert ids(await root.search("btc funding negative", min_score=-1)) == {"mo1", "s1"}
    assert (await root.breakdown())["scope"] == {"monitor": 1, "shared": 1}
    with pytest.raises(ValueError, match="agent name"):
        root.for_agent("shared")
    with pytest.raises(ValueError, match="memory scope must be"):
        await root.remember("x", scope="../etc")
    await root.close()


@pytest.mark.integration
async def test_top_k_and_min_score(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    mem = memory(tmp_path, hash_embedder, top_k=2, min_score=0.5)
    await mem.add_many([MemoryItem(t, id=f"m{i}") for i, t in enumerate(TEXTS)])
    assert len(await mem.search("cpu redis btc eth", min_score=-1)) == 2  # config top_k
    hits = await mem.search("Redis was unreachable for 90 seconds")
    assert [h.id for h in hits] == ["m4"] and hits[0].score >= 0.5  # nothing else clears 0.5
    assert await mem.search("completely unrelated words zebra") == []
    await mem.close()


@pytest.mark.integration
async def test_memory_protocol_add_and_query_keep_provenance(
    tmp_path: Path, hash_embedder: HashEmbedder
) -> None:
    mem = memory(tmp_path, hash_embedder).for_agent("trader")
    adapter = AgentMemory(mem)
    await adapter.add(
        MemoryContent(
            content="Closed the BTC long at 44,020 for +2.0%",
            mime_type=MemoryMimeType.TEXT,
            metadata={"kind": "outcome", "run_id": "run-1", "message_seq": "7", "symbol": "BTC/USDT"},
        )
    )
    json_content = MemoryContent(content={"decision": "halve SOL exposure"}, mime_type=MemoryMimeType.JSON)
    await adapter.add(json_content)
    result = await adapter.query("BTC long closed", top_k=1)
    [content] = result.results
    assert content.content == "Closed the BTC long at 44,020 for +2.0%"
    meta = content.metadata or {}
    provenance = (meta["kind"], meta["scope"], meta["run_id"], meta["message_seq"])
    assert provenance == ("outcome", "trader", "run-1", 7)
    assert meta["extra"] == {"symbol": "BTC/USDT"} and -1 <= meta["score"] <= 1
    assert meta["created_at"].endswith("+00:00")
    json_hit = (await mem.search("decision halve SOL exposure", top_k=1))[0]
    assert json_hit.text == '{"decision": "halve SOL exposure"}' and json_hit.kind == "note"
    await mem.remember("Closed the BTC long at 44,020 for +2.0%", kind="outcome", id="fixed")
    await mem.remember("Closed the BTC long at 44,020 for +2.5%", kind="outcome", id="fixed")  # upsert
    assert await mem.count() == 3
    await mem.close()


@pytest.mark.integration
async def test_persistence_and_embedder_binding(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    mem = memory(tmp_path, hash_embedder)
    await mem.add_many([MemoryItem(t) for t in TEXTS])
    await mem.close()
    again = memory(tmp_path, HashEmbedder())
    assert await again.count() == len(TEXTS)
    await again.close()

    class Other(HashEmbedder):
        name = "another-model"

    with pytest.raises(VectorStoreError, match="holds vectors of embedder 'test-hash-256'"):
        await memory(tmp_path, Other()).count()


@pytest.mark.integration
async def test_an_existing_l2_collection_is_refused(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    raw = chromadb.PersistentClient(path=str(tmp_path), settings=Settings(anonymized_telemetry=False))
    raw.create_collection("legacy_l2__shared", embedding_function=None)  # Chroma's default space: l2
    with pytest.raises(VectorStoreError, match="'legacy_l2__shared' .* uses 'l2' distance"):
        await memory(tmp_path, hash_embedder, collection="legacy_l2").count()


@pytest.mark.integration
async def test_chroma_calls_run_off_the_event_loop(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    threads: set[int] = set()
    real = chromadb.PersistentClient(path=str(tmp_path), settings=Settings(anonymized_telemetry=False))

    class Spy:
        def __init__(self, target: Any) -> None:
            self._target = target

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._target, name)
            if not callable(attr):
                return attr

            def call(*a: Any, **kw: Any) -> Any:
                threads.add(threading.get_ident())
                out = attr(*a, **kw)
                return Spy(out) if name == "get_or_create_collection" else out

            return call

    mem = VectorMemory(VectorConfig(path=str(tmp_path)), embedder=hash_embedder, client=Spy(real))
    await mem.add_many([MemoryItem(t) for t in TEXTS])
    await mem.search("cpu")
    await mem.count()
    assert threads and threading.get_ident() not in threads


@pytest.mark.integration
async def test_http_backend_same_config_shape(chroma_server: ChromaServer, minilm: Any) -> None:
    cfg = VectorConfig(backend="http", host="127.0.0.1", port=chroma_server.port, collection="alina_http")
    mem = VectorMemory(cfg, embedder=minilm)
    await mem.add_many([MemoryItem(t, id=f"m{i}") for i, t in enumerate(TEXTS)])
    hits = await mem.search("processor overloaded by simultaneous agents", top_k=1, min_score=-1)
    assert hits[0].id == "m1"
    qv = minilm.embed_sync(["processor overloaded by simultaneous agents"])[0]
    assert hits[0].score == pytest.approx(float(qv @ minilm.embed_sync([TEXTS[1]])[0]), abs=1e-4)
    assert mem.location() == f"chroma at 127.0.0.1:{chroma_server.port}" and mem.data_path() is None

    chroma_server.stop()
    with pytest.raises(VectorStoreUnavailableError, match="is the Chroma server running"):
        await mem.search("cpu")


@pytest.mark.integration
async def test_http_backend_unreachable(free_port: Any, hash_embedder: HashEmbedder) -> None:
    mem = VectorMemory(VectorConfig(backend="http", port=free_port()), embedder=hash_embedder)
    with pytest.raises(VectorStoreUnavailableError, match="cannot reach chroma at 127.0.0.1"):
        await mem.open()
