"""Build model clients from configuration (the only place that maps config to providers)."""

from __future__ import annotations

import os

from alina.config import AlinaConfig, ModelConfig
from alina.models._cache import ResponseCache
from alina.models._client import JsonToolClient
from alina.models._errors import ModelUnavailableError
from alina.models._governor import Governor, shared_governor
from alina.models._resilient import Listener, OnExhausted, ResilientClient


def build_provider(cfg: ModelConfig, *, max_tokens: int | None = None) -> JsonToolClient:
    """One provider client for a model entry of config.yaml."""
    common = dict(
        model=cfg.model,
        n_ctx=cfg.n_ctx,
        max_tokens=max_tokens or cfg.max_tokens,
        temperature=cfg.temperature,
        timeout_s=cfg.timeout_s,
        tool_policy=cfg.tool_policy,
        seed=cfg.seed,
        repeat_penalty=cfg.repeat_penalty,
    )
    if cfg.provider == "llamacpp":
        from alina.models.llamacpp import LlamaCppClient

        return LlamaCppClient(model_path=cfg.gguf_file(), n_threads=cfg.n_threads, **common)
    if cfg.base_url is None:  # the config's cross-field rules refuse this; a hand-built config may not
        raise ModelUnavailableError(f"provider {cfg.provider!r} needs models.*.base_url (got None)")
    if cfg.provider == "openai":
        from alina.models.openai_compat import OpenAICompatClient

        api_key = None
        if cfg.api_key_env:
            api_key = os.environ.get(cfg.api_key_env)
            if not api_key:
                raise ModelUnavailableError(
                    f"environment variable {cfg.api_key_env} (models.*.api_key_env) is not set"
                )
        return OpenAICompatClient(
            base_url=cfg.base_url,
            api_key=api_key,
            json_schema_style=cfg.json_schema_style,
            **common,
        )
    from alina.models.ollama import OllamaClient

    return OllamaClient(base_url=cfg.base_url, **common)


def model_server(cfg: ModelConfig) -> str:
    """Which server a model's calls load: its base URL, or the model file for the embedded one."""
    if cfg.provider == "llamacpp":
        return f"llamacpp:{cfg.path or 'default'}"
    return str(cfg.base_url)


def governor_for(config: AlinaConfig, model: str) -> Governor:
    """The process-wide governor of the server model ``model`` (a key of ``models:``) runs on,
    with cross-process Redis leases unless ``team.governor_lease_ttl_s`` is 0."""
    ttl = config.team.governor_lease_ttl_s
    return shared_governor(
        model_server(config.models[model]),
        limit=config.team.max_concurrent_model_calls,
        redis_url=config.redis.url() if ttl > 0 else None,
        lease_ttl_s=ttl or 30.0,
    )


def build_agent_client(
    config: AlinaConfig,
    agent: str,
    *,
    governor: Governor | None = None,
    listener: Listener | None = None,
    label: str | None = None,
    cache: ResponseCache | None = None,
    on_exhausted: OnExhausted | None = None,
    prompt_version: str = "0",
) -> ResilientClient:
    """The resilient client for one agent: its model, retries, fallback and governor.

    ``governor`` defaults to the process-wide one of the agent's model server. ``label`` names
    the caller in metrics, call records and the governor's priority class (default: the agent's
    name); ALINA's speaker selector uses ALINA's model under the label ``selector``. With a
    ``cache``, entries are namespaced by ``prompt_version`` (the agent's prompt version and
    content digest, ``v{version}-{digest}``: the caller knows the prompt, models do not).
    """
    agent_cfg = config.agents[agent]
    model_cfg = config.models[agent_cfg.model]
    if governor is None:
        governor = governor_for(config, agent_cfg.model)
    primary = build_provider(model_cfg, max_tokens=agent_cfg.max_tokens)
    fallback = (
        build_provider(config.models[model_cfg.fallback], max_tokens=agent_cfg.max_tokens)
        if model_cfg.fallback
        else None
    )
    return ResilientClient(
        label or agent,
        primary,
        retries=model_cfg.retries,
        fallback=fallback,
        governor=governor,
        listener=listener,
        on_exhausted=on_exhausted,
        cache=cache,
        prompt_version=prompt_version,
    )
