"""The model ladder (``agents.NAME.ladder``) and the default critic model."""

from __future__ import annotations

from alina.config import AlinaConfig
from alina.team.review._cases import Clients


def ladder_of(config: AlinaConfig, agent: str) -> list[str]:
    """``agents.NAME.ladder``, or the agent's model followed by the larger local rungs configured."""
    a = config.agents[agent]
    if a.ladder:
        return list(a.ladder)
    from alina.models.rungs import RUNGS

    return [a.model, *[k for k in RUNGS if k in config.models and k != a.model]]


def default_critic(config: AlinaConfig, clients: Clients) -> str | None:
    """``optimizer.critic``, else the largest local rung that can run here, else None."""
    if config.optimizer.critic is not None:
        return config.optimizer.critic
    from alina.models.rungs import RUNGS

    rungs = sorted((r for r in RUNGS.values() if r.key in config.models), key=lambda r: r.size, reverse=True)
    return next((r.key for r in rungs if clients.available(r.key) is None), None)
