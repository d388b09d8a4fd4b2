"""ALINA: team assembly, routing and the run loop (AutoGen lives here and in agents/, models/)."""

from alina.team._memory import RunMemoryWriter, open_memory, run_facts, run_memories, tool_uses
from alina.team._result import RunResult
from alina.team._routing import (
    AgentProfile,
    LexicalScorer,
    RouteDecision,
    Router,
    SnapshotError,
    Turn,
    match_name,
    parse_snapshot,
)
from alina.team._run import TeamRunner
from alina.team._sink import STOP_REQUESTED, AlreadyCompleted, MemorySink, ResumeError, RunEvent, RunSink
from alina.team._team import AlinaTeam, build_router, build_team, termination

__all__ = [
    "AgentProfile",
    "AlinaTeam",
    "AlreadyCompleted",
    "LexicalScorer",
    "MemorySink",
    "STOP_REQUESTED",
    "ResumeError",
    "RouteDecision",
    "Router",
    "RunEvent",
    "RunMemoryWriter",
    "RunResult",
    "RunSink",
    "SnapshotError",
    "TeamRunner",
    "Turn",
    "build_router",
    "build_team",
    "match_name",
    "open_memory",
    "parse_snapshot",
    "run_facts",
    "run_memories",
    "termination",
    "tool_uses",
]
