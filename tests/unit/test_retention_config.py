"""The ``retention:`` section: defaults, null = unlimited, every bad value named with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alina.config import AlinaConfig, ConfigError, RetentionConfig, load_config


def load(tmp_path: Path, retention: object, environ: dict[str, str] | None = None) -> AlinaConfig:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"retention": retention}))
    return load_config(p, environ=environ or {})


def test_defaults_bound_every_store_but_vectors() -> None:
    rc = AlinaConfig().retention
    assert (rc.messages_ttl_days, rc.max_messages) == (90, 1_000_000)
    assert (rc.events_ttl_days, rc.max_events) == (30, 5_000_000)
    assert (rc.checkpoints_keep_per_run, rc.checkpoints_ttl_days) == (3, 7)
    assert (rc.cache_max_entries, rc.cache_max_mb) == (100_000, 256)
    assert (rc.vectors_ttl_days, rc.batch_size) == (None, 5000)


def test_null_means_unlimited_and_fractional_days_are_fine(tmp_path: Path) -> None:
    unlimited = dict.fromkeys(
        ["messages_ttl_days", "max_messages", "checkpoints_keep_per_run", "cache_max_entries"]
    )
    rc = load(tmp_path, {**unlimited, "events_ttl_days": 0.5, "vectors_ttl_days": 365}).retention
    assert rc.messages_ttl_days is None and rc.max_messages is None and rc.checkpoints_keep_per_run is None
    assert rc.events_ttl_days == 0.5 and rc.vectors_ttl_days == 365


def test_env_override(tmp_path: Path) -> None:
    env = {"ALINA__RETENTION__MAX_MESSAGES": "5000", "ALINA__RETENTION__CACHE_MAX_MB": "null"}
    cfg = load(tmp_path, {}, env)
    assert cfg.retention.max_messages == 5000 and cfg.retention.cache_max_mb is None


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        ({"max_messages": 0}, "retention.max_messages: Input should be greater than or equal to 1 (got 0)"),
        ({"messages_ttl_days": 0}, "retention.messages_ttl_days: Input should be greater than 0 (got 0)"),
        ({"events_ttl_days": -3}, "retention.events_ttl_days: Input should be greater than 0 (got -3)"),
        ({"checkpoints_keep_per_run": 0}, "retention.checkpoints_keep_per_run: Input should be greater"),
        ({"cache_max_mb": float("inf")}, "retention.cache_max_mb: Input should be a finite number"),
        ({"max_events": 2.5}, "retention.max_events: Input should be a valid integer"),
        ({"cache_max_entries": True}, "retention.cache_max_entries: Value error, must be a number or null"),
        ({"batch_size": None}, "retention.batch_size: Input should be a valid integer (got None)"),
        ({"max_message": 10}, "retention.max_message: unknown field"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, retention: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, retention)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_model_rejects_bools_directly() -> None:
    with pytest.raises(ValueError, match="not true/false"):
        RetentionConfig(max_messages=True)  # type: ignore[arg-type]
