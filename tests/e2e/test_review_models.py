"""One full review on the real local models (the trader on the embedded model, the critic on the
larger rung when it is assembled), kept small through config: the stored figures agree with the
report."""

from __future__ import annotations

from pathlib import Path

import pytest

from alina.config import AlinaConfig, OptimizerConfig
from alina.memory_store import RunStore
from alina.memory_store.optimizer import OptimizerStore
from alina.memory_store.prompts import PromptVersions
from alina.team.review import review_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_review_on_the_local_models_stores_what_it_reports(fresh_pg_dsn: str) -> None:
    async with RunStore(fresh_pg_dsn):
        pass
    cfg = AlinaConfig(
        optimizer=OptimizerConfig(tune_cases=3, heldout_cases=5, fewshot_candidates=1, critic_max_tokens=300)
    )
    cfg.cache.enabled = False
    versions, store = PromptVersions(fresh_pg_dsn), OptimizerStore(fresh_pg_dsn)
    report = await review_all(cfg, "trader", versions=versions, store=store)
    [rv] = report.reviews
    assert rv.status == "done", rv.message
    larger = cfg.models["qwen15"].gguf_file()
    assert rv.spent.critic_calls == (1 if larger is not None and larger.is_file() else 0)
    assert rv.heldout_cases == 5 and rv.tune_cases == 3
    assert 0.0 <= rv.score_before <= 1.0 and rv.spent.model_calls <= rv.projected.model_calls
    assert any(c.origin == "fewshot" for c in rv.candidates)
    for c in rv.candidates:
        if c.version is None:  # an unusable critic reply: remembered, never a version
            assert c.status == "refused" and c.digest in {r.digest for r in await store.rejections("trader")}
            continue
        row = await versions.get("trader", c.version)
        assert row.parent_version == rv.version_before
        assert row.status == {"refused": "rejected"}.get(c.status, c.status)
        assert row.reason == c.reason and row.diff
        if c.status != "refused":
            assert row.p_value == c.p_value
            assert row.scores["candidate_mean"] == c.candidate_mean
            assert row.scores["current_mean"] == rv.score_before
            assert len(row.scores["candidate"]) == 5
    in_use = await versions.get("trader")
    assert in_use.version == rv.version_after
    [stored] = await store.review_rows("trader")
    assert stored["status"] == "done" and stored["trigger"] == "manual"
    assert stored["report"]["spent"] == rv.to_json()["spent"]
    assert stored["report"]["score_after"] == rv.score_after


def test_alina_run_uses_the_model_the_ladder_stored(fresh_pg_dsn: str, alina_config_file: Path) -> None:
    import asyncio
    import json

    from tests.e2e.test_cli import alina

    async def prepare() -> None:
        async with RunStore(fresh_pg_dsn):
            pass
        await OptimizerStore(fresh_pg_dsn).set_model(
            "trader", "alt", previous="embedded", reason="ladder test"
        )

    asyncio.run(prepare())
    env = {
        "ALINA__POSTGRES__DATABASE": fresh_pg_dsn.rsplit("/", 1)[1],
        "ALINA__CACHE__ENABLED": "false",
        "ALINA__MODELS__EMBEDDED__MODEL": "smollm2-135m-instruct-q4_1",
        "ALINA__MODELS__ALT__MODEL": "smollm2-135m-alt",  # the packaged model under another name
    }
    p = alina("run", "What is the price of BTC/USDT?", "--json", config=alina_config_file, env=env)
    assert p.returncode == 0, p.stderr
    run_id = json.loads(p.stdout)["run_id"]
    shown = json.loads(alina("runs", "show", run_id, "--json", config=alina_config_file, env=env).stdout)
    models = {e["agent"]: e["model"] for e in shown["evaluations"]}
    assert models["trader"] == "smollm2-135m-alt" and models["alina"] == "smollm2-135m-instruct-q4_1"
