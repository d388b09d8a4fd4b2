"""Checkpointing: what one-turn-at-a-time driving plus a Postgres commit per turn costs a run.

Three ways to run the same 3-turn team task (trader tool call, monitor tool call, ALINA's
answer) with scripted model clients, so model time is zero and only the run loop is measured
(the worst case for the overhead; a real turn of the embedded model takes about a second):

* anchor: stock AutoGen, the same agents and router in ONE ``SelectorGroupChat.run_stream``
  call, nothing persisted (how a plain AutoGen app runs a team);
* alina, no store: ``TeamRunner`` (one ``run_stream`` per turn + ``save_state`` after each);
* alina + Postgres: ``TeamRunner`` with ``RunStore``: every turn's messages, routing decisions,
  team state and prompts committed in one transaction by the background committer.

Reported: median wall time per run and per turn for each, the ratio to the anchor, the added
milliseconds per turn, and the commit latency (p50/p99 of ``RunStore.commit_turn``, which runs
off the model path). Sides alternate order every repetition. Postgres is started on a free port
under ``.alina/bench-checkpoint-pg`` and stopped at the end.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._harness import Goal, Result, median, progress, ratio

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".alina"
TASK = "What is the BTC/USDT trend over the last day of data, and is the system healthy?"
RUNS_PER_REP = 20
OVERHEAD_MS_PER_TURN_MAX = 50.0  # 5% of a ~1 s turn of the embedded model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clients() -> dict[str, Any]:
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, ModelFamily, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from alina.models import ResilientClient

    info = {
        "vision": False,
        "function_calling": True,
        "json_output": True,
        "family": ModelFamily.UNKNOWN,
        "structured_output": True,
        "multiple_system_messages": True,
    }

    def call(name: str, args: str) -> CreateResult:
        content = [FunctionCall(id="c", name=name, arguments=args)]
        usage = RequestUsage(prompt_tokens=10, completion_tokens=5)
        return CreateResult(finish_reason="function_calls", content=content, usage=usage, cached=False)

    scripts: dict[str, list[Any]] = {
        "trader": [call("candle_summary", '{"symbol": "BTC/USDT", "hours": 24}')],
        "monitor": [call("system_health", "{}")],
        "alina": ["BTC/USDT fell over the last day; the system is healthy."],
    }
    return {
        n: ResilientClient(n, ReplayChatCompletionClient(scripts.get(n, []), model_info=info), retries=0)  # type: ignore[arg-type]
        for n in ("alina", "trader", "monitor", "optimizer", "selector")
    }


async def _stock_once() -> float:
    """The anchor: same agents and router, one run_stream, nothing persisted."""
    from autogen_agentchat.teams import SelectorGroupChat

    from alina.agents import build_agent
    from alina.config import ORCHESTRATOR, SPECIALISTS, AlinaConfig
    from alina.team import build_router, termination

    cfg = AlinaConfig()
    clients = _clients()
    router = build_router(cfg, client=clients["selector"])
    agents = [build_agent(n, cfg, clients[n]) for n in (*SPECIALISTS, ORCHESTRATOR)]
    team = SelectorGroupChat(
        agents,
        model_client=clients["selector"],
        termination_condition=termination(cfg),  # type: ignore[arg-type]
        selector_func=router.selector_func,
        candidate_func=router.candidate_func,
    )
    t0 = time.perf_counter()
    messages = [m async for m in team.run_stream(task=TASK)]
    elapsed = time.perf_counter() - t0
    assert messages[-2].source == ORCHESTRATOR, "the anchor run did not complete"  # [-1] is the TaskResult
    return elapsed


async def _alina_once(store: Any) -> float:
    from alina.config import AlinaConfig
    from alina.team import TeamRunner

    runner = TeamRunner(AlinaConfig(), sink=store, clients=_clients())
    t0 = time.perf_counter()
    result = await runner.run(TASK)
    elapsed = time.perf_counter() - t0
    assert result.status == "completed" and result.turns == 3, result.error
    if store is not None:
        assert result.checkpoints == 3
    return elapsed


class _TimedStore:
    """RunStore whose commit_turn is timed (the committer calls it off the model path)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.commit_s: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def commit_turn(self, commit: Any) -> None:
        t0 = time.perf_counter()
        await self._store.commit_turn(commit)
        self.commit_s.append(time.perf_counter() - t0)


async def _measure(reps: int, dsn: str) -> dict[str, Any]:
    from alina.memory_store import RunStore
    from alina.models import allow_model_requests

    samples: dict[str, list[float]] = {"stock": [], "alina": [], "alina_pg": []}
    async with RunStore(dsn) as raw_store:
        store = _TimedStore(raw_store)
        with allow_model_requests():
            for _ in range(2):  # warm-up: imports, prompt files, first connections
                await _stock_once(), await _alina_once(None), await _alina_once(store)
            store.commit_s.clear()
            for rep in range(reps):
                progress(f"rep {rep + 1}/{reps}: {RUNS_PER_REP} runs of each side")
                sides = [
                    ("stock", _stock_once),
                    ("alina", lambda: _alina_once(None)),
                    ("alina_pg", lambda: _alina_once(store)),
                ]
                for name, once in sides if rep % 2 == 0 else reversed(sides):
                    runs = [await once() for _ in range(RUNS_PER_REP)]
                    samples[name].append(median(runs))
    return {"per_run_s": samples, "commit_s": store.commit_s}


def run(reps: int, quick: bool) -> Result:
    from alina.runtime.services import PostgresService

    WORK.mkdir(exist_ok=True)
    pg = PostgresService(data_dir=WORK / "bench-checkpoint-pg", port=_free_port())
    progress(f"starting Postgres ({pg.data_dir})")
    pg.start()
    try:
        raw = asyncio.run(_measure(reps, pg.dsn))
    finally:
        pg.stop()
    turns = 3
    stock, alina, alina_pg = (median(raw["per_run_s"][k]) * 1000 for k in ("stock", "alina", "alina_pg"))
    commit_ms = np.array(raw["commit_s"]) * 1000
    c50, c99 = float(np.percentile(commit_ms, 50)), float(np.percentile(commit_ms, 99))
    added = (alina_pg - stock) / turns
    rows = [
        ["run wall ms (3 turns), stock AutoGen, nothing saved", stock, stock, 1.0],
        ["run wall ms, alina one turn per call, no store", alina, stock, ratio(alina, stock)],
        ["run wall ms, alina + Postgres checkpoint per turn", alina_pg, stock, ratio(alina_pg, stock)],
        ["added ms per turn (alina + Postgres - stock) / 3", added, None, None],
        ["turn commit p50 ms (off the model path)", c50, None, None],
        ["turn commit p99 ms", c99, None, None],
    ]
    return Result(
        name="checkpoint",
        title="Checkpointing: per-turn driving and Postgres turn commits against one stock run_stream",
        headers=["measure", "value", "anchor", "ratio"],
        rows=rows,
        goals=[
            Goal(
                "added ms per turn, scripted models (worst case)",
                added,
                OVERHEAD_MS_PER_TURN_MAX,
                higher_is_better=False,
            )
        ],
        notes=[
            "Scripted model clients (zero model time), real tools on the packaged candles, real "
            "Postgres with fsync on; the router decides every speaker by rules (no selector calls).",
            "A commit holds that turn's messages, routing decisions, the team's save_state(), the "
            "prompt texts and the counters; the background committer writes it while the next "
            "turn runs, so commit latency is not on the model path unless 4 commits queue up.",
            f"Median of {RUNS_PER_REP} runs per side per repetition; the table shows the median of "
            "the repetitions.",
        ],
        params={"reps": reps, "quick": quick, "runs_per_rep": RUNS_PER_REP, "turns": turns},
        raw=raw,
    )
