"""`alina memory search` / `alina memory stats` data, on real Chroma, Postgres and Redis."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from alina.memory_store.commands import memory_stats, search_memory
from alina.memory_store.runs import RunStore, redact_dsn
from alina.memory_store.vector import MemoryItem, VectorConfig, VectorMemory
from alina.memory_store.writer import EventWriter

from .conftest import HashEmbedder

pytestmark = pytest.mark.integration


async def _memory(path: Path) -> VectorMemory:
    root = VectorMemory(VectorConfig(path=str(path), min_score=0.1), embedder=HashEmbedder())
    await root.add_many(
        [
            MemoryItem("BTC funding negative twice this week", "note", "trader", "run-a", 4, id="t1"),
            MemoryItem("BTC funding alert from the monitor", "alert", "monitor", "run-b", 9, id="m1"),
            MemoryItem("Always quote BTC prices with a timestamp", "lesson", "shared", id="s1"),
        ]
    )
    return root


async def test_search_ranks_with_scores_provenance_and_scope(tmp_path: Path) -> None:
    root = await _memory(tmp_path)
    report = await search_memory(root, "BTC funding negative")
    assert [h.id for h in report.hits][0] == "t1"
    assert [h.score for h in report.hits] == sorted((h.score for h in report.hits), reverse=True)
    assert report.scopes is None and report.min_score == 0.1
    as_trader = await search_memory(root, "BTC funding negative", agent="trader", kinds=["note", "lesson"])
    assert {h.id for h in as_trader.hits} <= {"t1", "s1"} and as_trader.scopes == ["trader", "shared"]
    data = json.loads(json.dumps(report.to_dict()))  # --json output is plain JSON
    top = data["hits"][0]
    assert (top["run_id"], top["message_seq"], top["kind"], top["scope"]) == ("run-a", 4, "note", "trader")
    assert data["location"] == f"chroma at {tmp_path}"
    with pytest.raises(ValueError, match="empty"):
        await search_memory(root, "  ")
    await root.close()


async def test_stats_count_every_backend(tmp_path: Path, fresh_pg_dsn: str, redis_service: Any) -> None:
    root = await _memory(tmp_path / "chroma")
    async with RunStore(fresh_pg_dsn) as store, EventWriter(store) as writer:
        for i in range(12):
            await writer.emit("tick", {"i": i})
    r = aioredis.Redis.from_url(redis_service.url)
    await r.flushdb()
    await r.set("alina:llm:trader:v1:aa", "x")
    await r.set("alina:llm:trader:v2:bb", "x")
    await r.set("alina:llm:monitor:v1:cc", "x")
    await r.set("alina:run:r1", "x")

    report = await memory_stats(pg_dsn=fresh_pg_dsn, redis_url=redis_service.url, memory=root)
    data = json.loads(json.dumps(report.to_dict()))
    pg, rd, vec = data["postgres"], data["redis"], data["vectors"]
    assert pg["tables"]["events"]["rows"] == 12 and pg["tables"]["runs"]["rows"] == 0
    assert pg["tables"]["events"]["bytes"] > 0 and pg["database_bytes"] > 0 and pg["schema_version"] >= 6
    assert pg["dsn"] == redact_dsn(fresh_pg_dsn)  # never a password
    assert (rd["keys"], rd["cache_keys"], rd["run_status_keys"]) == (4, 3, 1)
    assert rd["cache_keys_by_agent"] == {"trader": 2, "monitor": 1} and rd["used_memory_bytes"] > 0
    assert (vec["vectors"], vec["scope"], vec["kind"]) == (
        3,
        {"trader": 1, "monitor": 1, "shared": 1},
        {"note": 1, "alert": 1, "lesson": 1},
    )
    assert vec["disk_bytes"] > 0 and vec["embedder"] == "test-hash-256"
    await r.flushdb()
    await r.aclose()
    await root.close()


async def test_stats_report_a_down_backend_without_failing(free_port: Any, tmp_path: Path) -> None:
    port = free_port()
    report = await memory_stats(
        pg_dsn=f"postgresql://postgres@127.0.0.1:{port}/alina",
        redis_url=f"redis://127.0.0.1:{port}/0",
        memory=VectorMemory(VectorConfig(backend="http", port=port), embedder=HashEmbedder()),
    )
    assert "error" in report.postgres and "error" in report.redis and "error" in report.vectors
    assert "cannot reach chroma" in report.vectors["error"]
    skipped = await memory_stats(pg_dsn=None, redis_url=None, memory=None)
    assert skipped.to_dict() == {
        "postgres": {"skipped": True},
        "redis": {"skipped": True},
        "vectors": {"skipped": True},
    }


def test_cli_add_search_forget_and_bad_input(tmp_path: Path) -> None:
    """`alina memory add|search|forget` on real Chroma and MiniLM, in a fresh data dir; bad input
    exits 2 with the reason and no traceback."""
    import yaml

    from tests.e2e.test_cli import alina

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"paths": {"data_dir": str(tmp_path / "data")}}))
    lesson = "Quote BTC prices together with the candle time they come from"
    added = alina("memory", "add", lesson, "--kind", "lesson", "--json", config=cfg)
    assert added.returncode == 0, added.stderr
    got = json.loads(added.stdout)
    assert (got["kind"], got["scope"]) == ("lesson", "shared")
    again = alina("memory", "add", f"  {lesson} ", "--kind", "lesson", "--json", config=cfg)
    assert json.loads(again.stdout)["id"] == got["id"]  # the same note is stored once

    found = alina(
        "memory", "search", "when was this bitcoin price taken?", "--agent", "trader", "--json", config=cfg
    )
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert [(h["id"], h["kind"], h["text"]) for h in hits] == [(got["id"], "lesson", lesson)]

    for args, reason in [
        (("memory", "add", "   "), "empty"),
        (("memory", "add", "x", "--kind", "rumour"), "--kind"),
        (("memory", "add", "x", "--scope", "nobody"), "--scope"),
        (("memory", "search", " "), "empty"),
        (("memory", "search", "btc", "--agent", "nobody"), "--agent"),
    ]:
        bad = alina(*args, config=cfg)
        assert bad.returncode == 2 and reason in bad.stderr and "Traceback" not in bad.stderr, bad.stderr

    gone = alina("memory", "forget", got["id"], config=cfg)
    assert gone.returncode == 0 and "forgot 1 of 1" in gone.stdout, gone.stderr
    assert alina("memory", "forget", got["id"], config=cfg).returncode == 1  # nothing left to forget
    assert json.loads(alina("memory", "search", lesson, "--json", config=cfg).stdout)["hits"] == []
