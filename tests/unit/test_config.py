"""config.yaml loading: defaults, env overrides, and every problem reported with its path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alina.config import AlinaConfig, ConfigError, load_config, project_root


def write(tmp_path: Path, data: object, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return info.value.problems


def test_shipped_config_equals_the_defaults() -> None:
    assert load_config(project_root() / "config.yaml", environ={}) == AlinaConfig()


def test_missing_default_file_means_defaults_but_named_file_must_exist(tmp_path: Path, monkeypatch) -> None:
    assert problems(tmp_path / "nope.yaml") == [f"(file): no such file (got {str(tmp_path / 'nope.yaml')!r})"]


def test_env_overrides_nested_keys_and_parse_scalars(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, {}),
        environ={"ALINA__TEAM__MAX_TURNS": "3", "ALINA__MODELS__EMBEDDED__TIMEOUT_S": "12.5", "OTHER": "x"},
    )
    assert cfg.team.max_turns == 3
    assert cfg.models["embedded"].timeout_s == 12.5


def test_env_override_with_bad_value_names_the_field(tmp_path: Path) -> None:
    got = problems(write(tmp_path, {}), {"ALINA__TEAM__MAX_TURNS": "lots"})
    assert got == [
        "team.max_turns: Input should be a valid integer, unable to parse string as an integer (got 'lots')"
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"team": {"max_turns": 0}}, "team.max_turns: Input should be greater than or equal to 1 (got 0)"),
        ({"team": {"max_turn": 5}}, "team.max_turn: unknown field"),
        (
            {"models": {"embedded": {"provider": "gpt"}}},
            "models.embedded.provider: Input should be 'llamacpp', 'ollama' or 'openai' (got 'gpt')",
        ),
        (
            {"models": {"embedded": {"timeout_s": -1}}},
            "models.embedded.timeout_s: Input should be greater than 0 (got -1)",
        ),
        (
            {"models": {"embedded": {"api_key": "sk-123"}}},
            "models.embedded.api_key: unknown field (check the spelling; secrets belong in the environment)",
        ),
        (
            {"postgres": {"port": 70000}},
            "postgres.port: Input should be less than or equal to 65535 (got 70000)",
        ),
        (
            {"agents": {"trader": {"model": "missing"}}},
            "agents.trader.model: no model of that name under models: ['embedded', 'qwen15'] (got 'missing')",
        ),
        ({"agents": {"trader": {}}}, "agents.alina: required agent is missing"),
        (
            {"agents": {"alina": {}, "trader": {}, "monitor": {}, "optimizer": {}, "chef": {}}},
            "agents.chef: unknown agent",
        ),
        (
            {"agents": {"alina": {"prompt": "nope"}, "trader": {}, "monitor": {}, "optimizer": {}}},
            "agents.alina.prompt: no prompt file",
        ),
        (
            {"models": {"remote": {"provider": "openai"}}},
            "models.remote.base_url: required for provider 'openai' (got None)",
        ),
        (
            {"models": {"remote": {"provider": "ollama", "base_url": "localhost:11434"}}},
            "models.remote.base_url: must start with http:// or https://",
        ),
        (
            {"models": {"embedded": {"path": "/no/such.gguf"}}},
            "models.embedded.path: file not found (got '/no/such.gguf')",
        ),
        (
            {"models": {"embedded": {"fallback": "embedded"}}},
            "models.embedded.fallback: a model cannot be its own fallback",
        ),
        (
            {
                "models": {
                    "r": {
                        "provider": "openai",
                        "base_url": "http://x/v1",
                        "api_key_env": "sk-abcdefghijklmnop-123",
                    }
                }
            },
            "models.r.api_key_env: must name an environment variable (A-Z, 0-9, _; e.g. OPENAI_API_KEY), not "
            "hold the key itself; put the key in that variable (value hidden)",
        ),
        ({"redis": {"port": 55432}}, "redis.port: same port as postgres.port (got 55432)"),
        ("team: [1, 2", "(file): not valid YAML at line"),
        ("- just\n- a list\n", "(root): must be a mapping of sections"),
    ],
)
def test_broken_config_names_the_field(tmp_path: Path, data: object, expected: str) -> None:
    got = problems(write(tmp_path, data))
    assert any(p.startswith(expected) for p in got), got


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    got = problems(write(tmp_path, {"team": {"max_turns": 0, "wall_time_s": 0}, "redis": {"db": 99}}))
    assert len(got) == 3


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    secret = "sk-live-THIS-IS-A-SECRET-KEY-0123456789"
    got = problems(
        write(
            tmp_path,
            {"models": {"r": {"provider": "openai", "base_url": "http://x/v1", "api_key_env": secret}}},
        )
    )
    assert not any(secret in p for p in got)


def test_postgres_password_comes_from_the_environment_and_is_masked(monkeypatch) -> None:
    monkeypatch.setenv("ALINA_POSTGRES_PASSWORD", "hunter2")
    pg = AlinaConfig().postgres
    assert ":hunter2@" in pg.dsn()
    assert "hunter2" not in pg.dsn_for_display()


# -- the larger model (models.qwen15): optional, its file needed only when something uses it ---
MISSING = "/no/such/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def test_larger_model_is_configured_but_unused_by_default() -> None:
    cfg = AlinaConfig()
    qwen = cfg.models["qwen15"]
    assert qwen.provider == "llamacpp" and qwen.n_ctx == 4096 and qwen.timeout_s == 180.0
    assert qwen.gguf_file() == project_root() / ".alina/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert {a.model for a in cfg.agents.values()} == {"embedded"}
    assert cfg.models["embedded"].gguf_file() is None  # the packaged SmolLM2


def test_missing_larger_model_file_does_not_break_the_default_config(tmp_path: Path) -> None:
    cfg = load_config(project_root() / "config.yaml", environ={"ALINA__MODELS__QWEN15__PATH": MISSING})
    assert cfg.models["qwen15"].path == MISSING


@pytest.mark.parametrize(
    "environ",
    [
        {"ALINA__AGENTS__TRADER__MODEL": "qwen15"},  # an agent uses it
        {"ALINA__MODELS__EMBEDDED__FALLBACK": "qwen15"},  # the fallback of a model in use
    ],
    ids=["agent", "fallback"],
)
def test_missing_larger_model_file_is_an_error_once_used(environ: dict[str, str]) -> None:
    got = problems(project_root() / "config.yaml", {"ALINA__MODELS__QWEN15__PATH": MISSING, **environ})
    assert got == [
        f"models.qwen15.path: file not found (got {MISSING!r}); "
        "run scripts/setup.sh (make setup) to assemble it"
    ]


def test_relative_model_path_is_relative_to_the_project(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    rel = Path(*[".."] * len(project_root().parts[1:])) / gguf.relative_to("/")
    cfg = load_config(write(tmp_path, {"models": {"embedded": {"path": str(rel)}}}), environ={})
    assert cfg.models["embedded"].gguf_file() == project_root() / rel
    assert cfg.models["embedded"].gguf_file().resolve() == gguf.resolve()


def test_env_overrides_take_yaml_values_and_refuse_an_unknown_section(tmp_path: Path) -> None:
    """What pydantic-settings' env source does not do (see the comment on _apply_env_overrides)."""
    environ = {"ALINA__MEMORY__RETRIEVE_KINDS": "{alina: [lesson, alert]}"}
    cfg = load_config(write(tmp_path, {}), environ=environ)
    assert cfg.memory.retrieve_kinds == {"alina": ["lesson", "alert"]}
    assert problems(write(tmp_path, {}), {"ALINA__NOSUCH__KEY": "1"}) == [
        "nosuch: unknown field (check the spelling; secrets belong in the environment) (got ***)"
    ]
