"""What :meth:`alina.Alina.run` returns: one run, read as data (messages, tool calls, routing,
tokens, timings, scores), with ``to_frame()`` for pandas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from alina.team import RunResult

__all__ = ["Message", "RunReport", "Score", "ToolCall", "require_pandas"]


def require_pandas() -> Any:
    """The pandas module, or an ImportError that says how to install it."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas ships with the dev extra
        raise ImportError("to_frame() needs pandas: pip install 'agentalina[notebooks]' (or pandas)") from exc
    return pd


@dataclass(frozen=True)
class Message:
    """One message or event of a run, as stored and printed (secrets already masked)."""

    seq: int
    source: str
    """``user`` or an agent name."""
    type: str
    """AutoGen's message type, e.g. ``TextMessage``, ``ToolCallRequestEvent``."""
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    """Time from the previous message to this one (None for the user's task)."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call a specialist made: the arguments it sent and the result it got."""

    seq: int
    """The seq of the request message."""
    agent: str
    tool: str
    arguments: dict[str, Any]
    result: str | None
    """The tool's result text (None if the call has no recorded result)."""
    data: Mapping[str, Any] | None = None
    """The tool's structured result (a skill's ``ToolOutput``: e.g. the pair, the health verdict
    and its alerts), when it returned one."""

    @property
    def failed(self) -> bool:
        """Whether the tool answered with a handled error (``error: ...``)."""
        return self.result is not None and self.result.startswith("error:")


@dataclass(frozen=True)
class Score:
    """One evaluation of one message: ALINA's answer check or a specialist's output check."""

    seq: int
    agent: str
    name: str
    score: float
    passed: bool


@dataclass
class RunReport:
    """One finished run (or attempt of a resumed run).

    ``status`` is ``completed``, ``stopped`` (a limit) or ``failed``; ``answer`` is ALINA's final
    answer and ``answer_check`` the check of it against the run's own reports (grounded,
    complete, consistent, ``outcome``). ``messages``, ``tool_calls``, ``routing`` and ``scores``
    are in run order. ``raw`` is the team's own result (what ``alina run --json`` prints).
    """

    run_id: str
    task: str
    status: str
    stop_reason: str
    answer: str
    answer_check: dict[str, Any] | None
    error: str | None
    mode: str
    turns: int
    model_calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    messages: list[Message] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    routing: list[dict[str, Any]] = field(default_factory=list)
    """The router's decisions: speaker, method (rules, embeddings, model), confidence, reason."""
    scores: list[Score] = field(default_factory=list)
    raw: RunResult | None = field(default=None, repr=False)

    @classmethod
    def from_result(cls, result: RunResult) -> RunReport:
        """The report of a team run's result."""
        messages = [
            Message(e.seq, e.source, e.type, e.content, e.prompt_tokens, e.completion_tokens, e.latency_ms)
            for e in result.events
        ]
        scores = [
            Score(e.seq, ev.agent, ev.name, ev.score, ev.passed)
            for e in result.events
            for ev in e.evaluations
        ]
        return cls(
            run_id=result.run_id,
            task=result.task,
            status=result.status,
            stop_reason=result.stop_reason,
            answer=result.answer,
            answer_check=result.answer_check,
            error=result.error,
            mode=result.mode,
            turns=result.turns,
            model_calls=result.model_calls,
            cached_calls=result.cached_calls,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            wall_s=result.wall_s,
            messages=messages,
            tool_calls=tool_calls_of(messages, result.tool_data),
            routing=[_routing(d) for d in result.routing],
            scores=scores,
            raw=result,
        )

    @property
    def ok(self) -> bool:
        """Whether the run completed (``alina run`` exits 0 exactly then)."""
        return self.status == "completed"

    @property
    def tokens(self) -> dict[str, int]:
        """Prompt, completion and total tokens of the run's model calls."""
        total = self.prompt_tokens + self.completion_tokens
        return {"prompt": self.prompt_tokens, "completion": self.completion_tokens, "total": total}

    @property
    def timings(self) -> dict[str, float]:
        """Seconds: ``wall`` for the run, and the summed message latency of each speaker."""
        out: dict[str, float] = {"wall": round(self.wall_s, 3)}
        for m in self.messages:
            if m.latency_ms is not None:
                out[m.source] = round(out.get(m.source, 0.0) + m.latency_ms / 1000, 3)
        return out

    def transcript(self, width: int = 200) -> str:
        """The conversation as text, one line per message (``source [type]: content``)."""
        lines = []
        for m in self.messages:
            kind = "" if m.type == "TextMessage" else f" [{m.type}]"
            text = " ".join(m.content.split())
            lines.append(f"{m.source}{kind}: {text[:width]}{'...' if len(text) > width else ''}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of everything above (without ``raw``)."""
        data = {k: v for k, v in asdict(self).items() if k != "raw"}
        data["tokens"], data["timings"] = self.tokens, self.timings
        return data

    def to_frame(self) -> pd.DataFrame:
        """One row per message: seq, source, type, content, tokens, latency_ms and the scores
        of that message (``score_<name>`` columns), for pandas."""
        pd = require_pandas()
        rows = [asdict(m) for m in self.messages]
        for row in rows:
            for s in self.scores:
                if s.seq == row["seq"]:
                    row[f"score_{s.name}"] = s.score
        return pd.DataFrame(rows).set_index("seq") if rows else pd.DataFrame()


def _routing(d: Any) -> dict[str, Any]:
    data = asdict(d)
    data["candidates"] = list(data.get("candidates") or ())
    return data


def tool_calls_of(
    messages: list[Message], data: Mapping[str, Mapping[str, Any]] | None = None
) -> list[ToolCall]:
    """Each tool-call request paired with its result and structured data (``data``: call id ->
    a skill's ``ToolOutput`` data), in run order: the team's own pairing
    (:func:`alina.team.tool_uses`)."""
    from alina.team import tool_uses

    return [
        ToolCall(u.call_seq, u.agent, u.tool, u.arguments, u.result, u.data)
        for u in tool_uses(messages, data)
    ]
