"""Retrieval quality of VectorMemory + MiniLM on the hand-labeled set (retrieval_set.jsonl).

110 memories (every kind; trader, monitor, optimizer and shared scopes; 5 keyword distractors)
and 60 queries asked from an agent's view, written as paraphrases that avoid the memories'
words ("dog-themed coin" for DOGE, "the cache server went away" for "Redis unreachable").

Threshold: recall@5 >= 0.75 on pure ranking (no min_score). Measured 0.79 with all-MiniLM-L6-v2
(recall@10 0.95); TF-IDF on the same set reaches 0.53 and random ranking about 0.1, so the bar
catches a broken pipeline (L2 space, unnormalised vectors, a scope filter hiding memories, a
weaker embedder) while leaving room for numeric drift across torch builds. The remaining misses
are genuine paraphrase gaps of a 22M-parameter model ("carry trade" vs "funding-rate arbitrage").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alina.memory_store.vector import MemoryItem, VectorConfig, VectorMemory

pytestmark = pytest.mark.integration

RECALL_AT_5_MIN = 0.75


async def _load(path: Path, minilm: Any, memories: list[dict[str, Any]]) -> VectorMemory:
    root = VectorMemory(VectorConfig(path=str(path)), embedder=minilm)
    await root.add_many(
        [
            MemoryItem(m["text"], m["kind"], m["scope"], m.get("run_id"), m.get("message_seq"), id=m["id"])
            for m in memories
        ]
    )
    return root


async def test_labeled_set_shape(retrieval_set: Any) -> None:
    memories, queries = retrieval_set
    assert len(memories) >= 100 and len(queries) >= 40
    assert {m["kind"] for m in memories} == {"outcome", "decision", "lesson", "alert", "note"}
    assert {m["scope"] for m in memories} == {"trader", "monitor", "optimizer", "shared"}
    ids = {m["id"]: m for m in memories}
    for q in queries:  # every relevant memory is visible to the agent asking
        assert q["relevant"] and all(ids[r]["scope"] in (q["agent"], "shared") for r in q["relevant"])


async def test_recall_at_5(tmp_path: Path, minilm: Any, retrieval_set: Any, record_property: Any) -> None:
    memories, queries = retrieval_set
    scope_of = {m["id"]: m["scope"] for m in memories}
    root = await _load(tmp_path, minilm, memories)
    per_query, thresholded, misses = [], [], []
    for q in queries:
        view = root.for_agent(q["agent"])
        ranked = await view.search(q["text"], top_k=5, min_score=-1)
        assert all(scope_of[h.id] in (q["agent"], "shared") for h in ranked)  # scope filter holds
        relevant = set(q["relevant"])
        found = relevant & {h.id for h in ranked}
        per_query.append(len(found) / len(relevant))
        kept = {h.id for h in ranked if h.score >= root.config.min_score}
        thresholded.append(len(relevant & kept) / len(relevant))
        if found != relevant:
            misses.append(f"{q['id']} {q['text']!r}: missed {sorted(relevant - found)}")
    recall = sum(per_query) / len(per_query)
    recall_min_score = sum(thresholded) / len(thresholded)
    record_property("recall_at_5", round(recall, 3))
    record_property("recall_at_5_with_min_score", round(recall_min_score, 3))
    print(
        f"\nrecall@5 = {recall:.3f} (with min_score {root.config.min_score}: {recall_min_score:.3f}) "
        f"over {len(queries)} queries; misses:\n  " + "\n  ".join(misses)
    )
    assert recall >= RECALL_AT_5_MIN, "\n".join(misses)
    assert recall_min_score >= RECALL_AT_5_MIN - 0.05
    await root.close()


async def test_off_topic_queries_retrieve_nothing_at_the_default_min_score(
    tmp_path: Path, minilm: Any, retrieval_set: Any
) -> None:
    memories, _ = retrieval_set
    root = await _load(tmp_path, minilm, memories)
    # Not every off-topic text stays below 0.25: "what is the weather in Paris tomorrow?" scores
    # 0.26 against one memory, the price of keeping relevant paraphrases (0.2-0.6) above the bar.
    off_topic = [
        "write a short poem about cats",
        "hello",
        "translate 'good morning' into German",
        "who won the football world cup in 2010?",
        "a recipe for chocolate cake",
    ]
    for text in off_topic:
        assert await root.search(text) == [], text
    await root.close()
