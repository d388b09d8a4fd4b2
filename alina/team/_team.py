"""Team assembly: ALINA's SelectorGroupChat over the specialists, with explicit termination."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from autogen_agentchat.base import ChatAgent, Team, TerminationCondition
from autogen_agentchat.conditions import (
    MaxMessageTermination,
    SourceMatchTermination,
    TimeoutTermination,
)
from autogen_agentchat.teams import SelectorGroupChat
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import ChatCompletionClient

from alina.agents import agent_specs, build_agent
from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.memory_store.vector import VectorMemory
from alina.meta_prompts import Prompt
from alina.models import Governor, build_agent_client
from alina.models._cache import ResponseCache
from alina.models._resilient import Listener, OnExhausted
from alina.team._answers import AnswerCheckClient
from alina.team._routing import SELECTOR_PROMPT, Mode, Router, profiles_from_prompts


@dataclass
class AlinaTeam:
    """The assembled team plus what the run loop needs to observe it."""

    team: SelectorGroupChat
    router: Router
    clients: dict[str, ChatCompletionClient]
    prompts: dict[str, Prompt]
    """The prompt each agent runs with (its system text is recorded with every checkpoint)."""
    cache: ResponseCache | None = None
    memory: VectorMemory | None = None
    """The memory its agents retrieve from (None: no retrieval); closed by its owner, not here."""
    stream: bool = False
    """Whether its agents stream their text (``run_stream`` yields ModelClientStreamingChunkEvents)."""

    @property
    def prompt_versions(self) -> dict[str, int]:
        return {name: p.version for name, p in self.prompts.items()}

    async def close(self) -> None:
        closed: set[int] = set()
        for c in self.clients.values():
            if id(c) not in closed:
                closed.add(id(c))
                await c.close()
        if self.cache is not None:
            await self.cache.close()


def termination(config: AlinaConfig) -> TerminationCondition:
    """For a team driven in ONE ``run_stream`` call (the stock comparison in ``bench routing``):
    ALINA's answer, max turns (``MaxMessageTermination`` counts the task too) or wall time."""
    return (
        SourceMatchTermination([ORCHESTRATOR])
        | MaxMessageTermination(config.team.max_turns + 1)
        | TimeoutTermination(config.team.wall_time_s)
    )


def turn_termination() -> TerminationCondition:
    """ALINA's answer ends the run (its done marker).

    ALINA's team runs ONE turn per ``run_stream`` call (``max_turns=1``) so the run loop can
    checkpoint between turns; AutoGen resets termination counters at every such stop, so the
    run's turn limit and wall time are enforced by the run loop (``TeamRunner``), not here.
    """
    return SourceMatchTermination([ORCHESTRATOR])


def build_router(
    config: AlinaConfig, *, client: ChatCompletionClient | None = None, mode: Mode = "normal"
) -> Router:
    """ALINA's router over the configured agents' prompt files (descriptions, keywords,
    examples); ``client`` is the model it asks when unsure (None: it never calls a model)."""
    specs = agent_specs(config)
    return Router(profiles_from_prompts({n: s.prompt for n, s in specs.items()}), client=client, mode=mode)


def retrieving_agents(config: AlinaConfig) -> set[str]:
    """The agents that retrieve memory before their model calls (``memory.agents``, null = all;
    none when ``memory.enabled`` is false)."""
    if not config.memory.enabled:
        return set()
    every = (ORCHESTRATOR, *SPECIALISTS)
    return set(every if config.memory.agents is None else config.memory.agents) & set(every)


class _DropEchoedGroupChatErrors(logging.Filter):
    """AutoGen 0.7.5 publishes an agent's failure (``GroupChatError``) to the whole group; every
    other agent container rejects it with ``ValueError: Unhandled message in agent container``,
    which the runtime logs with a traceback, once per agent. The failure itself reaches the
    group chat manager and the run reports it; these echoes are noise, so they are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, ValueError)
            and "Unhandled message in agent container" in str(exc)
            and "GroupChatError" in str(exc)
        )


_ECHO_FILTER = _DropEchoedGroupChatErrors()


def build_team(
    config: AlinaConfig,
    *,
    clients: dict[str, ChatCompletionClient] | None = None,
    listener: Listener | None = None,
    mode: Mode = "normal",
    prompts: Mapping[str, Prompt] | None = None,
    cache: ResponseCache | None = None,
    memory: VectorMemory | None = None,
    governor: Governor | None = None,
    on_exhausted: OnExhausted | None = None,
    stream: bool = False,
) -> AlinaTeam:
    """Build ALINA's team from config. ``clients`` replaces model clients (unit tests pass
    ReplayChatCompletionClients; key ``"selector"`` is the router's model) and then ``cache``
    (the response cache those clients use) is only recorded. ``mode`` is the router's starting
    mode (``safe``: no order reaches the trader). ``prompts`` replaces agents' system prompts
    (a resumed run uses the ones it was checkpointed with). With ``memory`` (and
    ``memory.enabled``), each agent named in ``memory.agents`` (default all) retrieves from its
    view ``memory.for_agent(name)`` (its scope + shared; the kinds ``memory.retrieve_kinds``
    names) before every model call. ``governor`` caps the built clients' model calls (default:
    the process-wide governor of each agent's model server, shared with every other team).
    ``on_exhausted(agent, reason)``: called by a built client whose retries and fallback are all
    spent (the run loop moves the system to safe mode). ``stream``: the agents stream their
    text turns as they are generated (the console chat shows them token by token)."""
    logging.getLogger("autogen_core").addFilter(_ECHO_FILTER)  # idempotent: a filter is added once
    specs = agent_specs(config)
    retrieving = retrieving_agents(config) if memory is not None else set()
    used = {name: (prompts or {}).get(name, spec.prompt) for name, spec in specs.items()}
    if clients is None:
        if config.cache.enabled:
            cache = ResponseCache(config.redis.url(), ttl_s=config.cache.ttl_s)
        clients = {
            name: build_agent_client(
                config,
                name,
                governor=governor,
                listener=listener,
                cache=cache,
                on_exhausted=on_exhausted,
                prompt_version=specs[name].prompt_version,
            )
            for name in (ORCHESTRATOR, *SPECIALISTS)
        }
        clients["selector"] = build_agent_client(
            config,
            ORCHESTRATOR,
            governor=governor,
            listener=listener,
            label="selector",
            cache=cache,
            on_exhausted=on_exhausted,
            prompt_version=specs[ORCHESTRATOR].prompt_version,
        )
    kinds = config.memory.retrieve_kinds
    views = (
        {}
        if memory is None
        else {name: [memory.for_agent(name, kinds=kinds.get(name))] for name in retrieving}
    )
    agents: list[ChatAgent | Team] = [
        build_agent(
            name,
            config,
            AnswerCheckClient(clients[name])
            if name == ORCHESTRATOR and config.team.check_answers
            else clients[name],
            prompt=used[name],
            memory=views.get(name),
            stream=stream,
        )  # ALINA's answers are checked against the run's reports before anyone sees them
        for name in (*SPECIALISTS, ORCHESTRATOR)
    ]
    router = Router(
        profiles_from_prompts({n: s.prompt for n, s in specs.items()}), client=clients["selector"], mode=mode
    )
    # The router asks the selector model itself when unsure (enum-constrained, robust name
    # matching), so AutoGen's own model selection (case-sensitive, silent fallback) only runs
    # when the router has no client; candidate_func then narrows it to the likely agents.
    team = SelectorGroupChat(
        agents,
        model_client=clients["selector"],
        termination_condition=turn_termination(),
        max_turns=1,
        selector_prompt=SELECTOR_PROMPT,
        selector_func=router.selector_func,
        candidate_func=router.candidate_func,
        model_context=BufferedChatCompletionContext(buffer_size=config.team.history_window),
    )
    return AlinaTeam(
        team=team,
        router=router,
        clients=clients,
        prompts=used,
        cache=cache,
        memory=memory,
        stream=stream,
    )
