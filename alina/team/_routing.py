"""ALINA's speaker selection: rules first, the model only when the rules cannot tell.

The rules (cheap, deterministic, no model call):

1. An explicit ``@agent`` mention in the latest user message wins.
2. The specialists a task needs are the ones whose prompt keywords it mentions, in the order
   the task mentions them ("trend ... and is the system healthy" -> trader, then monitor).
3. Each needed specialist speaks once per user message; when all have spoken, ALINA speaks
   and writes the final answer (which ends the run).
4. A tool result never changes the speaker: AutoGen runs a specialist's tool round inside its
   own turn, so the selector only ever sees finished turns.

When no specialist matches, the router returns ``None`` and SelectorGroupChat asks ALINA's
router model, restricted to the specialists that have not spoken yet; once one has, ALINA
concludes. Every decision is recorded (method, confidence, candidates, choice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from autogen_agentchat.messages import BaseAgentEvent, BaseChatMessage

ORCHESTRATOR = "alina"
_WORD = re.compile(r"[a-z0-9/]+")
_MENTION = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class RouteDecision:
    speaker: str | None
    method: Literal["mention", "rules", "done", "model", "fallback"]
    confidence: float
    candidates: tuple[str, ...]
    reason: str


@dataclass
class Router:
    """Decides the next speaker from the conversation so far."""

    keywords: Mapping[str, Sequence[str]]
    """Specialist name -> lower-case keywords (from the prompt files)."""
    decisions: list[RouteDecision] = field(default_factory=list)

    @property
    def specialists(self) -> list[str]:
        return list(self.keywords)

    def needed(self, task: str) -> list[str]:
        """Specialists the task mentions, ordered by first mention."""
        words = _WORD.findall(task.lower())
        first: dict[str, int] = {}
        for pos, w in enumerate(words):
            for name, kws in self.keywords.items():
                if name not in first and (w in kws or w.rstrip("s") in kws):
                    first[name] = pos
        return sorted(first, key=first.__getitem__)

    def decide(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> RouteDecision:
        """The next speaker, or ``speaker=None`` to let the model choose among ``candidates``."""
        chat = [m for m in messages if isinstance(m, BaseChatMessage)]
        last_user = max((i for i, m in enumerate(chat) if m.source == "user"), default=-1)
        task = chat[last_user].to_text() if last_user >= 0 else ""
        spoken = [m.source for m in chat[last_user + 1 :]]
        remaining = [s for s in self.specialists if s not in spoken]
        mentioned = [n for n in _MENTION.findall(task) if n in self.keywords or n == ORCHESTRATOR]
        if mentioned:
            target = mentioned[0]
            if target not in spoken:
                return self._record(target, "mention", 1.0, (target,), f"@{target} in the task")
            return self._record(ORCHESTRATOR, "done", 1.0, (ORCHESTRATOR,), f"@{target} has answered")
        needed = [s for s in self.needed(task) if s not in spoken]
        if needed:
            return self._record(needed[0], "rules", 0.9, tuple(needed), "task keywords")
        if any(s in self.keywords for s in spoken):
            return self._record(
                ORCHESTRATOR, "done", 0.9, (ORCHESTRATOR,), "every needed specialist has answered"
            )
        return self._record(None, "model", 0.0, tuple(remaining), "no keyword matched")

    def _record(
        self, speaker: str | None, method: str, confidence: float, candidates: tuple[str, ...], reason: str
    ) -> RouteDecision:
        d = RouteDecision(speaker, method, confidence, candidates, reason)  # type: ignore[arg-type]
        self.decisions.append(d)
        return d

    # -- the two hooks SelectorGroupChat calls --------------------------------------------
    def selector_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> str | None:
        return self.decide(messages).speaker

    def candidate_func(self, messages: Sequence[BaseAgentEvent | BaseChatMessage]) -> list[str]:
        """Only consulted when ``selector_func`` returned None: the model picks among these."""
        last = self.decisions[-1] if self.decisions else None
        candidates = list(last.candidates) if last and last.candidates else self.specialists
        return candidates


SELECTOR_PROMPT = """Choose who acts next.
{roles}

Conversation:
{history}

Reply with exactly one name from {participants}."""
