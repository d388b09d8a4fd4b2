"""The router's semantic stage: embeddings of the request against each agent's description and
examples, between the rules and the model; fail-open to the lexical score.

Unit tests inject a deterministic fake embedder (topic words -> axes); the default MiniLM is
blocked there like any real model. Tests marked ``integration`` use the real MiniLM.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from autogen_core.models import ModelFamily
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.config import AlinaConfig
from alina.memory_store.embeddings import EmbedderUnavailableError
from alina.meta_prompts import load_prompt
from alina.models import RealModelCallBlocked
from alina.monitoring.metrics import REGISTRY
from alina.team import Router, Turn, build_router, parse_snapshot
from alina.team._routing import SEMANTIC_DECIDE_THRESHOLD, SEMANTIC_THRESHOLD, profiles_from_prompts
from alina.team._similarity import SemanticScorer, shared_embedder

NAMES = ("alina", "trader", "monitor", "optimizer")
SET_PATH = Path(__file__).resolve().parents[2] / "alina" / "team" / "routing_set.jsonl"
INFO = {
    "vision": False,
    "function_calling": True,
    "json_output": True,
    "family": ModelFamily.UNKNOWN,
    "structured_output": True,
    "multiple_system_messages": True,
}

# One axis per topic; a text's vector counts its topic words (plus a small constant axis so no
# vector is zero). Deterministic, and close enough to "meaning" for the router's logic.
TOPICS: dict[str, tuple[str, ...]] = {
    "trader": ("bitcoin", "price", "market", "pair", "candles", "trading", "coins", "moon"),
    "monitor": ("machine", "system", "processor", "memory", "fail", "crash", "off", "wobbly", "computer"),
    "optimizer": ("answer", "reply", "rubric", "summary", "mark", "polish"),
    "alina": ("morning", "thank", "later", "who", "introduce"),
}


class TopicEmbedder:
    """A fake embedder: sync and async, counting calls and the texts it was asked for."""

    name = "fake-topics"

    def __init__(self) -> None:
        self.sync_calls = 0
        self.async_calls = 0
        self.texts: list[str] = []

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.lower().replace("?", " ").replace(".", " ").replace(",", " ").split()
            rows.append([sum(w.startswith(t) for w in words for t in ts) for ts in TOPICS.values()] + [0.3])
        out = np.asarray(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        self.sync_calls += 1
        self.texts += list(texts)
        return self._vectors(texts)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.async_calls += 1
        self.texts += list(texts)
        return self._vectors(texts)


class AsyncOnlyEmbedder(TopicEmbedder):
    """Like an Ollama embedder: no synchronous path."""

    embed_sync = None  # type: ignore[assignment]


class BrokenEmbedder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        raise EmbedderUnavailableError("the local embedding model is not installed")

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_sync(texts)


def profiles() -> list[Any]:
    return profiles_from_prompts({n: load_prompt(n) for n in NAMES})


def router(embedder: Any, *, client: Any = None, mode: str = "normal") -> Router:
    return Router(profiles(), embedder=embedder, client=client, mode=mode)  # type: ignore[arg-type]


def U(text: str) -> Turn:
    return Turn("user", text)


def replay(*steps: Any) -> ReplayChatCompletionClient:
    return ReplayChatCompletionClient(list(steps), model_info=INFO)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the stage


async def test_a_request_without_keywords_goes_to_the_closest_specialist_without_the_model() -> None:
    fake = TopicEmbedder()
    r = router(fake, client=replay())  # any model call would fail: nothing is scripted
    d = await r.route([U("Something feels off today.")])
    assert (d.speaker, d.method) == ("monitor", "semantic")
    assert d.confidence >= SEMANTIC_DECIDE_THRESHOLD and d.candidates[0] == "monitor"
    assert "alina" not in d.candidates  # the stage picks among the specialists
    # Inside the team the embeddings are computed off the event loop, in one batch.
    assert (fake.async_calls, fake.sync_calls) == (1, 0)


def test_decide_embeds_synchronously_when_the_embedder_can() -> None:
    fake = TopicEmbedder()
    d = router(fake).decide([U("Something feels off today.")])
    assert (d.speaker, d.method) == ("monitor", "semantic")
    assert fake.sync_calls >= 1


async def test_an_async_only_embedder_is_prepared_ahead_of_the_decision() -> None:
    fake = AsyncOnlyEmbedder()
    r = router(fake)
    assert r.decide([U("Something feels off today.")]).method == "model"  # nothing embedded yet
    d = await r.route([U("Something feels off today.")])
    assert (d.speaker, d.method) == ("monitor", "semantic")
    assert r.decide([U("Something feels off today.")]).method == "semantic"  # now cached


async def test_keyword_requests_never_reach_the_embedder() -> None:
    fake = TopicEmbedder()
    r = router(fake)
    for task in (
        "What is the BTC price?",
        "Is the system healthy?",
        "Hello!",
        "Score this: the market is up",
    ):
        await r.route([U(task)])
    assert fake.texts == [] and fake.sync_calls == fake.async_calls == 0


def test_a_confident_clause_joins_the_plan_after_the_keyword_steps() -> None:
    r = router(TopicEmbedder())
    task = U("Show me the BTC candles, then tell me why the computer feels wobbly")
    d = r.decide([task])
    assert (d.speaker, d.method) == ("trader", "rules")
    assert d.candidates == ("trader", "monitor")
    d = r.decide([task, Turn("trader", "BTC/USDT 5m: uptrend")])
    assert (d.speaker, d.method) == ("monitor", "semantic")
    assert d.confidence >= SEMANTIC_THRESHOLD
    d = r.decide([task, Turn("trader", "BTC/USDT 5m: uptrend"), Turn("monitor", "healthy")])
    assert (d.speaker, d.method) == ("alina", "done")


def test_a_clause_like_alinas_examples_lets_alina_answer() -> None:
    fake = TopicEmbedder()
    assert router(None).decide([U("Good night, catch you later")]).method == "model"  # lexical: unsure
    d = router(fake).decide([U("Good night, catch you later")])
    assert (d.speaker, d.method) == ("alina", "done")
    assert "catch you later" in fake.texts


async def test_when_the_match_is_unsure_the_model_chooses() -> None:
    # One topic word of each specialist: a three-way tie, nothing else decides.
    client = replay('{"speaker": "optimizer"}')
    r = router(TopicEmbedder(), client=client)
    decided = r.decide([U("polish the wobbly moon")])
    assert decided.speaker is None and decided.method == "model"
    assert decided.confidence < SEMANTIC_DECIDE_THRESHOLD
    assert set(decided.candidates) == {"trader", "monitor", "optimizer"}
    d = await r.route([U("polish the wobbly moon")])
    assert (d.speaker, d.method) == ("optimizer", "model")


def test_the_semantic_method_is_counted_in_the_metrics() -> None:
    before = REGISTRY.get_sample_value("alina_routing_decisions_total", {"method": "semantic"}) or 0.0
    r = router(TopicEmbedder())
    r._record(r.decide([U("Something feels off today.")]))
    after = REGISTRY.get_sample_value("alina_routing_decisions_total", {"method": "semantic"})
    assert after == before + 1


# --------------------------------------------------------------------------- fail-open


def _lexical_only(task: str) -> tuple[str | None, str]:
    d = router(None).decide([U(task)])
    return d.speaker, d.method


@pytest.mark.parametrize(
    "task", ["Something feels off today.", "Anything odd going on?", "Good night, catch you later"]
)
async def test_an_embedder_that_cannot_load_falls_back_to_lexical_and_warns_once(
    task: str, caplog: pytest.LogCaptureFixture
) -> None:
    broken = BrokenEmbedder(f"broken-{abs(hash(task))}")  # a name of its own: warned once per name
    with caplog.at_level(logging.WARNING, logger="alina.team._similarity"):
        r = router(broken)
        d1 = r.decide([U(task)])
        d2 = await r.route([U(task)])
        router(broken).decide([U(task)])  # another router, same embedder: no second warning
    assert (d1.speaker, d1.method) == _lexical_only(task)
    assert (d2.speaker, d2.method) == _lexical_only(task)
    assert r.semantic.failed and not r.semantic.active
    warnings = [rec for rec in caplog.records if "semantic routing disabled" in rec.getMessage()]
    assert len(warnings) == 1 and "not installed" in warnings[0].getMessage()
    assert broken.calls == 2  # once per router, then disabled


def test_without_an_embedder_the_router_is_the_lexical_one() -> None:
    r = router(None)
    assert not r.semantic.active
    d = r.decide([U("Something feels off today.")])
    assert d.speaker is None and d.method == "model"


async def test_the_default_embedder_is_blocked_like_a_model_in_unit_tests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(RealModelCallBlocked):
        shared_embedder().embed_sync(["x"])  # type: ignore[attr-defined]
    r = build_router(AlinaConfig())
    with caplog.at_level(logging.WARNING, logger="alina.team._similarity"):
        d = await r.route([U("Something feels off today.")])
    assert d.method == "model" and d.speaker is None  # no client: AutoGen would choose
    assert r.semantic.active  # blocked is not broken: allowed again later, it is used
    assert not [rec for rec in caplog.records if "semantic routing disabled" in rec.getMessage()]


def test_scorer_confidence_is_a_softmax_share_among_the_compared_agents() -> None:
    s = SemanticScorer(profiles(), TopicEmbedder())
    ranked, conf = s.rank("the processor memory crash") or ([], 0.0)
    assert ranked[0][0] == "monitor" and conf > 0.9
    only_two = s.rank("the processor memory crash", among=("trader", "optimizer"))
    assert only_two is not None and {n for n, _ in only_two[0]} == {"trader", "optimizer"}
    assert 0.5 <= only_two[1] <= 1.0
    assert s.rank("   ") is None


# --------------------------------------------------------------------------- the real MiniLM


def _labeled() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SET_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.integration
def test_with_minilm_the_router_without_the_model_is_accurate_on_the_labeled_set() -> None:
    rows = _labeled()
    routers = {m: build_router(AlinaConfig(), mode=m) for m in ("normal", "safe")}  # type: ignore[arg-type]
    per: dict[str, list[bool]] = {"tune": [], "heldout": [], "needs_model": []}
    methods: dict[str, int] = {}
    for r in rows:
        d = routers[r.get("mode", "normal")].decide(parse_snapshot(r["snapshot"], NAMES))
        methods[d.method] = methods.get(d.method, 0) + 1
        per["needs_model" if r.get("needs_model") else r["split"]].append(d.speaker == r["expected"])
    assert routers["normal"].semantic.active, "MiniLM did not load"
    clear = per["tune"] + per["heldout"]
    report = {k: f"{sum(v)}/{len(v)}" for k, v in per.items()}
    print(f"labeled set with MiniLM, no model: clear {sum(clear) / len(clear):.3f} {report} {methods}")
    assert sum(clear) / len(clear) >= 0.95, report  # the semantic stage must not cost the rules
    every = clear + per["needs_model"]
    assert sum(every) / len(every) >= 0.95, report


@pytest.mark.integration
@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("Did the computer crash while I was away?", "monitor"),
        ("Has the digital gold gone up since yesterday?", "trader"),
        ("Was your reply any good, honestly?", "optimizer"),
    ],
)
async def test_with_minilm_paraphrases_route_by_meaning(task: str, expected: str) -> None:
    r = build_router(AlinaConfig(), client=replay())  # the model must not be needed
    d = await r.route([U(task)])
    assert (d.speaker, d.method) == (expected, "semantic"), d
