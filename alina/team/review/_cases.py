"""Running an agent (its system text, its model) on evaluation cases, and metering the calls."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from autogen_core.models import ChatCompletionClient, LLMMessage, SystemMessage, UserMessage

from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
from alina.meta_prompts.evals import Case, score_case
from alina.team.review._report import Budget, Progress


class _Meter:
    """Counts the model calls, tokens and wall time a review spends."""

    def __init__(self) -> None:
        self.spent = Budget()
        self._t0 = time.monotonic()

    def count(self, usage: Any, *, critic: bool = False) -> None:
        self.spent.model_calls += 1
        self.spent.critic_calls += int(critic)
        if usage is not None:
            self.spent.tokens += int(getattr(usage, "prompt_tokens", 0) or 0) + int(
                getattr(usage, "completion_tokens", 0) or 0
            )

    def close(self) -> Budget:
        self.spent.wall_s = round(time.monotonic() - self._t0, 2)
        return self.spent


class Clients:
    """Model clients by key under ``models:`` (built on first use from config), or given ones
    (tests pass scripted clients)."""

    def __init__(self, config: AlinaConfig, given: Mapping[str, ChatCompletionClient] | None = None) -> None:
        self.config = config
        self.given = dict(given or {})
        self._built: dict[tuple[str, int | None], ChatCompletionClient] = {}

    def available(self, key: str) -> str | None:
        """Why model ``key`` cannot run here (None: it can)."""
        if key in self.given:
            return None
        m = self.config.models.get(key)
        if m is None:
            return f"no model {key!r} under models:"
        gguf = m.gguf_file() if m.provider == "llamacpp" else None
        if gguf is not None and not gguf.is_file():
            return f"model {key} is not assembled ({gguf}); run make setup"
        return None

    def get(self, key: str, max_tokens: int | None) -> ChatCompletionClient:
        if key in self.given:
            return self.given[key]
        if (key, max_tokens) not in self._built:
            from alina.models import build_provider

            self._built[(key, max_tokens)] = build_provider(self.config.models[key], max_tokens=max_tokens)
        return self._built[(key, max_tokens)]

    async def close(self) -> None:
        for c in self._built.values():
            await c.close()


def _tools(agent: str) -> list[Any]:
    if agent not in SPECIALISTS:
        return []
    from alina.agents._tools import tools_for_agent

    return list(tools_for_agent(agent))


async def run_case(
    client: ChatCompletionClient,
    agent: str,
    system: str,
    case: Case,
    tools: Sequence[Any],
    meter: _Meter | None = None,
) -> Any:
    """The agent's output on ``case`` with system text ``system``, as the eval set scores it.

    ALINA answers the task from the case's reports (each a message from its specialist). A
    specialist makes its forced tool call; the tool is never run: when it is the expected tool
    the case's report (the real tool's output on the packaged data) is its text, as a run with
    ``reflect_on_tool_use: false`` would show it; another tool's output is not known to the case
    and counts as no report. A failed model call (a timeout on a loaded machine) is tried once
    more; a second failure is an empty output (it scores low, the review goes on) and is counted
    in the meter's ``errors``, so a report shows when failures, not prompts, moved the scores."""
    messages: list[LLMMessage] = [
        SystemMessage(content=system),
        UserMessage(content=case.task, source="user"),
    ]
    if agent == ORCHESTRATOR:
        messages += [UserMessage(content=r.content, source=r.source) for r in case.reports]
    for attempt in (1, 2):
        try:
            result = await client.create(messages, tools=list(tools) if agent != ORCHESTRATOR else [])
            break
        except Exception as exc:
            if meter is not None:
                meter.count(None)
            if attempt == 2:
                if meter is not None:
                    meter.spent.errors += 1
                return (
                    ""
                    if agent == ORCHESTRATOR
                    else {"tool": None, "args": {}, "text": "", "error": str(exc)[:200]}
                )
    if meter is not None:
        meter.count(result.usage)
    content = result.content
    if agent == ORCHESTRATOR:
        return content if isinstance(content, str) else ""
    if isinstance(content, list) and content:
        call = content[0]
        try:
            args = json.loads(call.arguments or "{}")
        except (json.JSONDecodeError, TypeError):
            args = {}
        right = call.name == case.expect.get("tool")
        text = "\n".join(r.content for r in case.reports) if right else ""
        return {"tool": call.name, "args": args if isinstance(args, dict) else {}, "text": text}
    return {"tool": None, "args": {}, "text": content if isinstance(content, str) else ""}


async def _scores(
    clients: Clients,
    config: AlinaConfig,
    agent: str,
    model: str,
    system: str,
    cases: Sequence[Case],
    meter: _Meter,
    progress: Progress | None,
    step: str,
) -> tuple[list[float], list[Any]]:
    """Per-case scores (mean over ``optimizer.trials``) and the first trial's outputs."""
    client = clients.get(model, config.agents[agent].max_tokens)
    tools = _tools(agent)
    trials = config.optimizer.trials
    scores: list[float] = []
    outputs: list[Any] = []
    for i, case in enumerate(cases):
        got = []
        for t in range(trials):
            out = await run_case(client, agent, system, case, tools, meter)
            got.append(score_case(agent, case, out))
            if t == 0:
                outputs.append(out)
        scores.append(sum(got) / len(got))
        if progress is not None:
            progress(step, i + 1, len(cases))
    return scores, outputs


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")
