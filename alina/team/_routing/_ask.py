"""The model step of the router: when nothing else is confident, the selector model chooses
among the likeliest candidates, its reply constrained to an enum of their names (``json_output``)
and matched case-insensitively; a failed call or a reply naming no candidate falls back to the
best similarity match (method ``fallback``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from autogen_core.models import ChatCompletionClient, LLMMessage, SystemMessage, UserMessage
from pydantic import BaseModel, create_model

from alina.team._routing._lexical import match_name
from alina.team._routing._snapshots import _SELECTOR_SYSTEM, _SELECTOR_USER, _SHOTS_PER_AGENT
from alina.team._routing._types import AgentProfile, RouteDecision, Turn

log = logging.getLogger("alina.team._routing")


async def ask_model(
    client: ChatCompletionClient,
    profiles: Mapping[str, AgentProfile],
    turns: Sequence[Turn],
    pending: RouteDecision,
) -> RouteDecision:
    """The speaker the model picks among ``pending.candidates`` (see the module docstring)."""
    from alina.models import ModelError, RealModelCallBlocked

    candidates = list(pending.candidates)
    users = [i for i, t in enumerate(turns) if t.source == "user"]
    task = turns[users[-1]].content if users else ""
    done = [t.source for t in turns[users[-1] + 1 :]] if users else []
    roles = "\n".join(f"{n}: {profiles[n].description}" for n in candidates)
    shots = "\n".join(
        f"Request: {ex}\nAnswer: {n}" for n in candidates for ex in profiles[n].examples[:_SHOTS_PER_AGENT]
    )
    messages: list[LLMMessage] = [
        SystemMessage(content=_SELECTOR_SYSTEM.format(roles=roles, shots=shots)),
        UserMessage(
            content=_SELECTOR_USER.format(
                task=task[:600],
                done=f"Already answered: {', '.join(dict.fromkeys(done))}.\n" if done else "",
            ),
            source="user",
        ),
    ]
    speaker_type: Any = Literal[tuple(candidates)]  # an enum of the candidates' names
    choice: type[BaseModel] = create_model("RouteChoice", speaker=(speaker_type, ...))
    try:
        result = await client.create(messages, json_output=choice, extra_create_args={"max_tokens": 24})
    except RealModelCallBlocked:
        raise
    except ModelError as exc:
        log.warning("router model call failed (%s): falling back to the best similarity match", exc)
        return RouteDecision(
            candidates[0],
            "fallback",
            pending.confidence,
            tuple(candidates),
            f"model failed ({type(exc).__name__}): best similarity match",
        )
    reply = result.content if isinstance(result.content, str) else ""
    name = match_name(reply, candidates)
    if name is None:
        return RouteDecision(
            candidates[0],
            "fallback",
            pending.confidence,
            tuple(candidates),
            f"model named no candidate ({reply[:60]!r}): best similarity match",
        )
    return RouteDecision(name, "model", 0.5, tuple(candidates), pending.reason + "; the model chose")
