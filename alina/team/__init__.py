"""ALINA: team assembly, routing and the run loop (AutoGen lives here and in agents/, models/)."""

from alina.team._routing import RouteDecision, Router
from alina.team._run import RunEvent, RunResult, RunSink, TeamRunner
from alina.team._team import AlinaTeam, build_team, termination

__all__ = [
    "AlinaTeam",
    "RouteDecision",
    "Router",
    "RunEvent",
    "RunResult",
    "RunSink",
    "TeamRunner",
    "build_team",
    "termination",
]
