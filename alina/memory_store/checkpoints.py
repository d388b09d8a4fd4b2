"""Turn commits and resume points: what makes a run survive a crash.

After every team turn the run loop hands one :class:`TurnCommit` to the store: the messages and
routing decisions of that turn, the team's ``save_state()``, the prompt versions the agents ran
with and the run's counters. :func:`write_turn` writes all of it in ONE transaction, so Postgres
only ever holds whole turns: a process killed mid-turn leaves the previous checkpoint and exactly
the messages that led to it, and the resumed run redoes the interrupted turn from there. Message
and decision rows are keyed ``(run_id, seq)``, so nothing can be stored twice either.

:func:`read_resume_point` gives back the latest checkpoint with the system prompts it needs
(AutoGen's state does not hold system prompts; a prompt may have been rewritten since).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alina._secrets import mask_secrets, redact_text

__all__ = [
    "MessageRow",
    "PromptRef",
    "ResumePoint",
    "RoutingRow",
    "TurnCommit",
    "drop_uncommitted",
    "read_resume_point",
    "write_turn",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """One score of one message: ``name`` says which check (answer_check, output_check)."""

    name: str
    agent: str
    score: float
    passed: bool
    details: dict[str, Any]
    prompt_version: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class MessageRow:
    seq: int
    source: str
    type: str
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    evaluations: tuple[Evaluation, ...] = ()
    """Scores of this message (ALINA's answer check, a specialist's output check), stored in
    ``evaluations`` with the message, in the same transaction."""
    decision: str | None = None
    """Set when the message is a decision (an order action, ALINA's answer): one line stored in
    ``decisions`` with the message's seq, in the same transaction as the message."""


@dataclass(frozen=True)
class RoutingRow:
    seq: int
    speaker: str | None
    method: str
    confidence: float
    candidates: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class PromptRef:
    """The exact system prompt an agent ran with: version, content digest and text."""

    agent: str
    version: int
    digest: str
    system: str


@dataclass
class TurnCommit:
    """One committed turn of a run (``turn`` counts team steps from 1)."""

    run_id: str
    turn: int
    messages: list[MessageRow]
    routing: list[RoutingRow]
    team_state: dict[str, Any]
    """The team's ``save_state()``; empty for the rows of a turn that was cut (no checkpoint)."""
    prompts: list[PromptRef]
    position: dict[str, Any] = field(default_factory=dict)
    """The run's counters after this turn (turns, model calls, tokens, answer...)."""

    @property
    def is_checkpoint(self) -> bool:
        return bool(self.team_state)

    @property
    def message_count(self) -> int:
        """Messages of the run up to and including this turn."""
        return int(self.position.get("message_count", self.messages[-1].seq if self.messages else 0))


@dataclass
class ResumePoint:
    """Where an interrupted run continues from. ``turn == 0``: no turn was committed yet, the run
    restarts from its task (``team_state`` is None)."""

    run_id: str
    task: str
    status: str
    resumes: int
    turn: int
    team_state: dict[str, Any] | None
    prompts: dict[str, PromptRef]
    position: dict[str, Any]


async def write_turn(conn: AsyncConnection, commit: TurnCommit) -> None:
    """Write one turn atomically: messages, routing decisions, prompt versions, checkpoint and
    the run's progress counters. Replaying the same commit is a no-op (every insert is keyed).

    Secrets are masked on the way in (:mod:`alina._secrets`): message texts, and the team state,
    whose model contexts hold every tool call's raw arguments and results (a resumed run sees
    ``***`` where a key was: the call it belonged to is already done)."""
    pos = mask_secrets(commit.position)
    async with conn.transaction():
        cur = conn.cursor()
        if commit.messages:
            await cur.executemany(
                "INSERT INTO messages (run_id, seq, source, type, content, prompt_tokens, "
                "completion_tokens, latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id, seq) DO NOTHING",
                [
                    (
                        commit.run_id,
                        m.seq,
                        m.source,
                        m.type,
                        redact_text(m.content),
                        m.prompt_tokens,
                        m.completion_tokens,
                        m.latency_ms,
                    )
                    for m in commit.messages
                ],
            )
        scored = [(m, e) for m in commit.messages for e in m.evaluations]
        if scored:
            await cur.executemany(
                "INSERT INTO evaluations (run_id, message_seq, name, agent, score, passed, details, "
                "prompt_version, model) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id, message_seq, name) DO NOTHING",
                [
                    (
                        commit.run_id,
                        m.seq,
                        e.name,
                        e.agent,
                        min(1.0, max(0.0, e.score)),
                        e.passed,
                        Jsonb(e.details),
                        e.prompt_version,
                        e.model,
                    )
                    for m, e in scored
                ],
            )
        decided = [m for m in commit.messages if m.decision]
        if decided:
            await cur.executemany(
                "INSERT INTO decisions (run_id, message_seq, agent, decision) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (run_id, message_seq) WHERE message_seq IS NOT NULL DO NOTHING",
                [(commit.run_id, m.seq, m.source, m.decision) for m in decided],
            )
        if commit.routing:
            await cur.executemany(
                "INSERT INTO routing_decisions (run_id, seq, speaker, method, confidence, candidates, "
                "reason) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, seq) DO NOTHING",
                [
                    (
                        commit.run_id,
                        r.seq,
                        r.speaker,
                        r.method,
                        min(1.0, max(0.0, float(r.confidence))),
                        Jsonb(list(r.candidates)),
                        r.reason,
                    )
                    for r in commit.routing
                ],
            )
        if not commit.is_checkpoint:
            return
        for p in commit.prompts:
            await _record_prompt(conn, p)
        await conn.execute(
            "INSERT INTO checkpoints (run_id, turn, team_state, prompt_versions, message_count, position) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_id, turn) DO NOTHING",
            (
                commit.run_id,
                commit.turn,
                Jsonb(mask_secrets(commit.team_state)),
                Jsonb({p.agent: {"version": p.version, "digest": p.digest} for p in commit.prompts}),
                commit.message_count,
                Jsonb(pos),
            ),
        )
        await conn.execute(
            "UPDATE runs SET turns = %s, model_calls = %s, tool_calls = %s, prompt_tokens = %s, "
            "completion_tokens = %s WHERE id = %s",
            (
                int(pos.get("turns", 0)),
                int(pos.get("model_calls", 0)),
                int(pos.get("tool_calls", 0)),
                int(pos.get("prompt_tokens", 0)),
                int(pos.get("completion_tokens", 0)),
                commit.run_id,
            ),
        )


async def _record_prompt(conn: AsyncConnection, p: PromptRef) -> None:
    cur = await conn.execute(
        "INSERT INTO prompt_versions (agent, version, digest, system) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (agent, version) DO NOTHING RETURNING digest",
        (p.agent, p.version, p.digest, p.system),
    )
    if await cur.fetchone() is None:
        cur = await conn.execute(
            "SELECT digest FROM prompt_versions WHERE agent = %s AND version = %s", (p.agent, p.version)
        )
        row = await cur.fetchone()
        if row is not None and row[0] != p.digest:
            logger.warning(
                "prompt %s v%d changed without a version bump (stored digest %s, now %s): bump "
                "`version` in its YAML file so runs can tell the texts apart",
                p.agent,
                p.version,
                row[0],
                p.digest,
            )


async def drop_uncommitted(conn: AsyncConnection, run_id: str) -> None:
    """Delete the rows a run wrote after its last checkpoint (the cut turn a resume redoes)."""
    cur = await conn.execute(
        "SELECT position FROM checkpoints WHERE run_id = %s ORDER BY turn DESC LIMIT 1", (run_id,)
    )
    row = await cur.fetchone()
    position = row[0] if row else {}
    await conn.execute(
        "DELETE FROM messages WHERE run_id = %s AND seq > %s", (run_id, int(position.get("message_count", 0)))
    )
    await conn.execute(
        "DELETE FROM evaluations WHERE run_id = %s AND message_seq > %s",
        (run_id, int(position.get("message_count", 0))),
    )
    await conn.execute(
        "DELETE FROM decisions WHERE run_id = %s AND message_seq > %s",
        (run_id, int(position.get("message_count", 0))),
    )
    await conn.execute(
        "DELETE FROM routing_decisions WHERE run_id = %s AND seq > %s",
        (run_id, int(position.get("routing_count", 0))),
    )


async def read_resume_point(conn: AsyncConnection, run_id: str) -> ResumePoint | None:
    """The latest checkpoint of ``run_id`` (None: no such run). Prompt texts come from
    ``prompt_versions`` when the digest matches what the checkpoint recorded."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT id, task, status, resumes FROM runs WHERE id = %s", (run_id,))
    run = await cur.fetchone()
    if run is None:
        return None
    await cur.execute(
        "SELECT turn, team_state, prompt_versions, position FROM checkpoints WHERE run_id = %s "
        "ORDER BY turn DESC LIMIT 1",
        (run_id,),
    )
    cp = await cur.fetchone()
    prompts: dict[str, PromptRef] = {}
    if cp is not None:
        for agent, ref in (cp["prompt_versions"] or {}).items():
            await cur.execute(
                "SELECT system FROM prompt_versions WHERE agent = %s AND version = %s AND digest = %s",
                (agent, ref["version"], ref["digest"]),
            )
            row = await cur.fetchone()
            if row is not None:
                prompts[agent] = PromptRef(agent, int(ref["version"]), str(ref["digest"]), row["system"])
    return ResumePoint(
        run_id=run["id"],
        task=run["task"],
        status=run["status"],
        resumes=int(run["resumes"]),
        turn=int(cp["turn"]) if cp else 0,
        team_state=cp["team_state"] if cp else None,
        prompts=prompts,
        position=dict(cp["position"]) if cp else {},
    )
