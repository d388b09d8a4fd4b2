"""Prompt changes in a running team: new prompt versions put into use, checkpointed ones restored.

:class:`_PromptSwap` is a base class of :class:`~alina.team._run.TeamRunner`:
:meth:`~_PromptSwap.refresh_prompts` rebuilds the team when ``prompt_source`` names a prompt
version the agents do not run with yet (the conversation and the clients carry over, the response
cache namespace follows the version), and ``_rebuild`` gives a resumed run the prompts it was
checkpointed with. The runner sets every attribute declared here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping

from alina.config import ORCHESTRATOR, AlinaConfig
from alina.memory_store.checkpoints import PromptRef
from alina.meta_prompts import Prompt
from alina.models import ResilientClient
from alina.team._team import AlinaTeam, build_team

logger = logging.getLogger("alina.team._run")  # the runner's log: records keep its name


class _PromptSwap:
    """Puts prompt versions into use in the runner's team (see the module docstring)."""

    config: AlinaConfig
    team: AlinaTeam
    prompt_source: Callable[[], Awaitable[Mapping[str, Prompt]]] | None
    _routing_seen: int

    async def refresh_prompts(self) -> dict[str, Prompt]:
        """Put the prompts of ``prompt_source`` into use without a restart: when an agent's
        version or text differs from the one it runs with, the team is rebuilt with them (same
        clients, cache, mode) and gets its conversation back, and the agent's response-cache
        namespace follows the new version. Returns the changed prompts. Fails open: when the
        source cannot answer (Postgres away, a bad prompt file) the agents keep their prompts
        and a warning is logged."""
        if self.prompt_source is None:
            return {}
        try:
            wanted = await self.prompt_source()
        except Exception as exc:  # never fail a run for this
            logger.warning("prompt versions unavailable (%s): the agents keep the prompts they run with", exc)
            return {}
        changed = {
            name: p
            for name, p in wanted.items()
            if name in self.team.prompts
            and (p.version, p.digest) != (self.team.prompts[name].version, self.team.prompts[name].digest)
        }
        if not changed:
            return {}
        for name, p in changed.items():
            logger.info("agent %s now runs prompt v%d (%s)", name, p.version, p.digest)
        state = await self.team.team.save_state()
        self.team = build_team(
            self.config,
            clients=self.team.clients,
            mode=self.team.router.mode,
            prompts={**self.team.prompts, **changed},
            cache=self.team.cache,
            memory=self.team.memory,
            stream=self.team.stream,
        )
        await self.team.team.load_state(state)
        self._routing_seen = 0
        for name, p in changed.items():  # cache entries of the old version are never served
            labels = (name, "selector") if name == ORCHESTRATOR else (name,)
            for label in labels:
                client = self.team.clients.get(label)
                if isinstance(client, ResilientClient):
                    client.prompt_version = f"v{p.version}-{p.digest}"
        return changed

    def _rebuild(self, prompts: dict[str, PromptRef]) -> None:
        """A fresh AutoGen team (same clients, cache and mode) with the checkpointed prompts."""
        overrides: dict[str, Prompt] = {}
        for name, current in self.team.prompts.items():
            ref = prompts.get(name)
            if ref is not None and ref.digest != current.digest:
                logger.warning(
                    "agent %s resumes with its checkpointed prompt v%d (%s), not the current v%d (%s)",
                    name,
                    ref.version,
                    ref.digest,
                    current.version,
                    current.digest,
                )
                overrides[name] = dataclasses.replace(current, version=ref.version, system=ref.system)
        self.team = build_team(
            self.config,
            clients=self.team.clients,
            mode=self.team.router.mode,
            prompts=overrides,
            cache=self.team.cache,
            memory=self.team.memory,
            stream=self.team.stream,
        )
        self._routing_seen = 0
