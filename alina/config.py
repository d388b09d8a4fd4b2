"""Configuration: ``config.yaml`` -> pydantic models, env overrides, cross-field rules.

Loading happens in three steps, each of which reports *every* problem it finds:

1. read the YAML file (a missing file means "all defaults"; the defaults equal the shipped
   ``config.yaml``, a test keeps them in sync);
2. apply ``ALINA__SECTION__KEY=value`` environment overrides (values parsed as YAML scalars);
3. validate the structure (``extra="forbid"``: an unknown key is an error, not a silent no-op),
   then the cross-field rules (an agent names a model that exists, ports do not collide, ...).

Problems are raised together as :class:`ConfigError`, whose lines read
``path.to.field: what is wrong (got X)``. Secrets never live in the file: a model names the
environment variable that holds its API key (``api_key_env``), and the key is read from the
environment only when a client is built. A problem line never quotes a secret: ``X`` is ``***``
when the field's name looks secret (``api_key``, ``password``...), for an unknown field, for an
``*_env`` field, and for any value that looks like a key (see :mod:`alina._secrets`); every line
passes through :func:`~alina._secrets.redact_text` as well.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from alina._secrets import (
    MASK,
    env_name_problem,
    is_secret_name,
    looks_like_secret,
    mask_secrets,
    redact_text,
)
from alina.settings._base import StrictModel as _Strict
from alina.settings._base import project_root as project_root
from alina.settings.agents import ASSEMBLED_GGUFS as ASSEMBLED_GGUFS
from alina.settings.agents import LARGER_GGUF as LARGER_GGUF
from alina.settings.agents import ORCHESTRATOR as ORCHESTRATOR
from alina.settings.agents import SPECIALISTS as SPECIALISTS
from alina.settings.agents import AgentConfig as AgentConfig
from alina.settings.agents import ModelConfig as ModelConfig
from alina.settings.agents import SkillsConfig as SkillsConfig
from alina.settings.agents import TeamConfig as TeamConfig
from alina.settings.agents import _larger_model
from alina.settings.alerts import ACTIONS as ACTIONS
from alina.settings.alerts import FIGURES as FIGURES
from alina.settings.alerts import ActionConfig as ActionConfig
from alina.settings.alerts import AlertRule as AlertRule
from alina.settings.alerts import AlertsConfig as AlertsConfig
from alina.settings.alerts import MonitoringConfig as MonitoringConfig
from alina.settings.memory import KINDS as MEMORY_KINDS
from alina.settings.memory import MemoryConfig as MemoryConfig
from alina.settings.memory import VectorConfig as VectorConfig
from alina.settings.optimizer import OptimizerBudgetConfig as OptimizerBudgetConfig
from alina.settings.optimizer import OptimizerConfig as OptimizerConfig
from alina.settings.service import JobConfig, ServeConfig, default_jobs, jobs_problems
from alina.settings.stack import CacheConfig as CacheConfig
from alina.settings.stack import PathsConfig as PathsConfig
from alina.settings.stack import PostgresConfig as PostgresConfig
from alina.settings.stack import RedisConfig as RedisConfig
from alina.settings.stack import ResilienceConfig as ResilienceConfig
from alina.settings.stack import RetentionConfig as RetentionConfig
from alina.settings.trading import TradingConfig

__all__ = [
    "AgentConfig",
    "AlertRule",
    "AlertsConfig",
    "AlinaConfig",
    "ConfigError",
    "MemoryConfig",
    "ModelConfig",
    "MonitoringConfig",
    "PostgresConfig",
    "RedisConfig",
    "RetentionConfig",
    "TeamConfig",
    "ENV_PREFIX",
    "default_config_path",
    "load_config",
    "project_root",
]

ENV_PREFIX = "ALINA__"
PROMPT_DIR = Path(__file__).resolve().parent / "meta_prompts" / "prompts"
"""The prompt files (``alina.meta_prompts`` loads them; here only their names are checked)."""


class ConfigError(Exception):
    """The configuration is invalid; the operator must fix it (CLI exit code 2)."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = [_redact_problem(p) for p in problems]
        problems = self.problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


class AlinaConfig(_Strict):
    """The whole configuration (``config.yaml``)."""

    paths: PathsConfig = Field(default_factory=PathsConfig)
    models: dict[str, ModelConfig] = Field(
        default_factory=lambda: {"embedded": ModelConfig(), "qwen15": _larger_model()}
    )
    agents: dict[str, AgentConfig] = Field(
        default_factory=lambda: {
            ORCHESTRATOR: AgentConfig(max_tokens=128),
            **{name: AgentConfig() for name in SPECIALISTS},
        }
    )
    team: TeamConfig = Field(default_factory=TeamConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    skills: SkillsConfig = Field(default_factory=SkillsConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    trading: TradingConfig = Field(default_factory=TradingConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    jobs: dict[str, JobConfig] = Field(default_factory=default_jobs)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)

    def data_dir(self) -> Path:
        """Absolute data directory (relative paths resolve against the project root)."""
        p = Path(self.paths.data_dir)
        return p if p.is_absolute() else project_root() / p

    def model_for(self, agent: str) -> ModelConfig:
        return self.models[self.agents[agent].model]


def default_config_path() -> Path:
    """``$ALINA_CONFIG`` if set, else ``config.yaml`` at the project root."""
    env = os.environ.get("ALINA_CONFIG")
    return Path(env) if env else project_root() / "config.yaml"


def _redact_problem(line: str) -> str:
    """``path: message`` with secrets redacted in both halves (the split keeps a secret-looking
    path such as ``models.x.api_key`` from masking the first word of its own message)."""
    path, sep, message = line.partition(": ")
    return redact_text(path) + sep + redact_text(message)


def _hides(path: tuple[Any, ...]) -> bool:
    """Whether a value at ``path`` must never be shown: a secret-looking or ``*_env`` field."""
    return any(is_secret_name(str(p)) or str(p).lower().endswith("_env") for p in path)


def _short(value: Any, limit: int = 60, path: tuple[Any, ...] = ()) -> str:
    """``repr(value)`` cut to ``limit`` characters, or ``***`` for a secret (see the module
    docstring); secrets are masked before the cut, so a cut never leaves part of a key."""
    if _hides(path) or looks_like_secret(value):
        return MASK
    if isinstance(value, dict):
        value = mask_secrets(value)
    elif isinstance(value, list | tuple):
        value = mask_secrets({"": value})[""]
    text = redact_text(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Hand-written rather than pydantic-settings' EnvSettingsSource: measured with pydantic-settings
# 2.16.3 (env_prefix ALINA__, env_nested_delimiter __, env_parse_none_str null), it refuses the
# YAML values this module promises (ALINA__MEMORY__AGENTS='[alina]', ALINA__MEMORY__RETRIEVE_KINDS=
# '{alina: [lesson]}': it decodes JSON only) and silently ignores an unknown section
# (ALINA__NOSUCH__KEY=1), which must be an error; tests/unit/test_config.py pins both.
def _apply_env_overrides(raw: dict[str, Any], environ: dict[str, str]) -> list[str]:
    """Merge ``ALINA__A__B=value`` into ``raw['a']['b']``; returns problems found."""
    problems: list[str] = []
    for key in sorted(environ):
        if not key.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            problems.append(f"{key}: malformed override name (got {key!r})")
            continue
        try:
            value = yaml.safe_load(environ[key]) if environ[key] != "" else ""
        except yaml.YAMLError:
            value = environ[key]
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                problems.append(
                    f"{'.'.join(parts[: i + 1])}: {key} needs a section here "
                    f"(got {_short(child, path=tuple(parts[: i + 1]))})"
                )
                break
            node = child
        else:
            node[parts[-1]] = value
    return problems


def _format_validation_error(err: ValidationError) -> list[str]:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(root)"
        msg = e["msg"]
        got = _short(e.get("input"), path=tuple(e["loc"]))
        if e["type"] == "extra_forbidden":
            # An unknown field's value is never shown: a misspelt secret name (pasword:) holds a secret too.
            msg, got = "unknown field (check the spelling; secrets belong in the environment)", MASK
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {msg} (got {got})")
    return lines


def _cross_field_problems(cfg: AlinaConfig) -> list[str]:
    problems: list[str] = []
    known_prompts = {p.stem for p in PROMPT_DIR.glob("*.yaml")}
    for name in (ORCHESTRATOR, *SPECIALISTS):
        if name not in cfg.agents:
            problems.append(f"agents.{name}: required agent is missing (got {sorted(cfg.agents)})")
    for name, agent in cfg.agents.items():
        if name not in (ORCHESTRATOR, *SPECIALISTS):
            problems.append(
                f"agents.{name}: unknown agent; known: {[ORCHESTRATOR, *SPECIALISTS]} (got {name!r})"
            )
        if not name.isidentifier():
            problems.append(f"agents.{name}: agent names must be identifiers (got {name!r})")
        if agent.model not in cfg.models:
            problems.append(
                f"agents.{name}.model: no model of that name under models: "
                f"{sorted(cfg.models)} (got {agent.model!r})"
            )
        prompt = agent.prompt or name
        if prompt not in known_prompts:
            problems.append(
                f"agents.{name}.prompt: no prompt file alina/meta_prompts/{prompt}.yaml; "
                f"known: {sorted(known_prompts)} (got {prompt!r})"
            )
    # A model file must exist only when something may load it: an agent's model or its fallback.
    in_use = {a.model for a in cfg.agents.values() if a.model in cfg.models}
    in_use |= {fb for k in in_use if (fb := cfg.models[k].fallback) is not None}
    for key, m in cfg.models.items():
        where = f"models.{key}"
        if m.provider == "llamacpp":
            gguf = m.gguf_file()
            if key in in_use and gguf is not None and not gguf.is_file():
                hint = (
                    "; run scripts/setup.sh (make setup) to assemble it"
                    if gguf.name in ASSEMBLED_GGUFS
                    else ""
                )
                problems.append(f"{where}.path: file not found (got {m.path!r}){hint}")
            if m.base_url is not None:
                problems.append(f"{where}.base_url: llamacpp runs in-process (got {m.base_url!r})")
        else:
            if not m.base_url:
                problems.append(f"{where}.base_url: required for provider {m.provider!r} (got None)")
            elif not m.base_url.startswith(("http://", "https://")):
                problems.append(f"{where}.base_url: must start with http:// or https:// (got {m.base_url!r})")
            if m.path is not None:
                problems.append(f"{where}.path: only for provider 'llamacpp' (got {m.path!r})")
        if m.api_key_env is not None:
            env_problem = env_name_problem(m.api_key_env)
            if env_problem:
                problems.append(f"{where}.api_key_env: {env_problem}")
            elif m.provider != "openai":
                problems.append(f"{where}.api_key_env: only for provider 'openai' (got {m.api_key_env!r})")
        if m.fallback is not None:
            if m.fallback not in cfg.models:
                problems.append(f"{where}.fallback: no model of that name (got {m.fallback!r})")
            elif m.fallback == key:
                problems.append(f"{where}.fallback: a model cannot be its own fallback (got {key!r})")
    if cfg.skills.plugin_dir is not None:
        folder = Path(cfg.skills.plugin_dir)
        folder = folder if folder.is_absolute() else project_root() / folder
        if not folder.is_dir():
            problems.append(f"skills.plugin_dir: not a folder (got {cfg.skills.plugin_dir!r})")
    env_problem = env_name_problem(cfg.postgres.password_env)
    if env_problem:
        problems.append(f"postgres.password_env: {env_problem}")
    problems += cfg.trading.cross_field_problems()
    problems += jobs_problems(cfg.jobs, set(cfg.models), set(cfg.agents))
    for i, name in enumerate(cfg.memory.agents or []):
        if name not in (ORCHESTRATOR, *SPECIALISTS):
            problems.append(
                f"memory.agents.{i}: unknown agent; known: {[ORCHESTRATOR, *SPECIALISTS]} (got {name!r})"
            )
    for name, kinds in cfg.memory.retrieve_kinds.items():
        if name not in (ORCHESTRATOR, *SPECIALISTS):
            problems.append(
                f"memory.retrieve_kinds.{name}: unknown agent; known: "
                f"{[ORCHESTRATOR, *SPECIALISTS]} (got {name!r})"
            )
        for i, kind in enumerate(kinds):
            if kind not in MEMORY_KINDS:
                problems.append(
                    f"memory.retrieve_kinds.{name}.{i}: unknown kind; known: "
                    f"{list(MEMORY_KINDS)} (got {kind!r})"
                )
    problems += _optimizer_problems(cfg)
    if cfg.postgres.port == cfg.redis.port and cfg.postgres.host == cfg.redis.host:
        problems.append(f"redis.port: same port as postgres.port (got {cfg.redis.port})")
    return problems


def _optimizer_problems(cfg: AlinaConfig) -> list[str]:
    problems = [
        f"agents.{name}.ladder.{i}: no model of that name under models: {sorted(cfg.models)} (got {key!r})"
        for name, agent in cfg.agents.items()
        for i, key in enumerate(agent.ladder or [])
        if key not in cfg.models
    ]
    for name, agent in cfg.agents.items():
        if agent.ladder is not None and len(set(agent.ladder)) != len(agent.ladder):
            problems.append(f"agents.{name}.ladder: a model appears twice (got {agent.ladder})")
    if cfg.optimizer.critic is not None and cfg.optimizer.critic not in cfg.models:
        problems.append(
            f"optimizer.critic: no model of that name under models: {sorted(cfg.models)} "
            f"(got {cfg.optimizer.critic!r})"
        )
    return problems


def load_config(
    path: str | Path | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> AlinaConfig:
    """Load and validate the configuration; raise :class:`ConfigError` listing every problem.

    ``path=None`` uses :func:`default_config_path`; a default path that does not exist means
    built-in defaults, an explicitly named path that does not exist is an error.
    """
    explicit = path is not None
    p = Path(path) if path is not None else default_config_path()
    source = str(p)
    raw: Any = {}
    if p.exists():
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
            raise ConfigError(
                [f"(file): not valid YAML at {where} (got {_short(str(exc))})"], source
            ) from None
        except OSError as exc:
            raise ConfigError([f"(file): cannot read ({exc.strerror})"], source) from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError([f"(root): must be a mapping of sections (got {_short(raw)})"], source)
    elif explicit or os.environ.get("ALINA_CONFIG"):
        raise ConfigError([f"(file): no such file (got {str(p)!r})"], source)
    problems = _apply_env_overrides(raw, dict(os.environ if environ is None else environ))
    for dotted, value in (overrides or {}).items():
        node = raw
        *heads, last = dotted.split(".")
        for h in heads:
            node = node.setdefault(h, {})
        node[last] = value
    try:
        cfg = AlinaConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(problems + _format_validation_error(err), source) from None
    problems += _cross_field_problems(cfg)
    if problems:
        raise ConfigError(problems, source)
    return cfg
