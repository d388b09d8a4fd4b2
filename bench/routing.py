"""Routing: ALINA's router vs stock SelectorGroupChat (accuracy, selector calls, end-to-end time).

Both sides use the same embedded model (``LlamaCppClient``, SmolLM2-135M-Instruct Q4_1, through
the same ``ResilientClient`` ALINA's team uses), the same participants and descriptions.

* **Labeled set** (``alina/team/routing_set.jsonl``): for each snapshot, who speaks next.
  ALINA = ``Router.route`` (rules, lexical and semantic similarity — MiniLM embeddings — and
  the model only when unsure); its accuracy without the model is reported too, with and
  without the semantic stage. Stock =
  ``SelectorGroupChat``'s own model-based selection with its default prompt: a team of stub
  participants (same names and descriptions, no model) gets the snapshot as its task, its
  manager's previous speaker set to the snapshot's last speaker (through ``load_state``, as in
  a live run), and ``max_turns=1``; the stub that speaks is the selection. Selector model calls
  are counted on both sides (retries included). One pass: temperature 0 makes it deterministic.
* **End to end**: a fixed set of multi-step tasks run by ALINA's team (``TeamRunner``) and by the
  same agents in a stock ``SelectorGroupChat`` (default prompt, same termination: ALINA's answer,
  ``team.max_turns``, wall time). Wall time per task, interleaved (ALINA then stock, per task).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._harness import Goal, Result, median, progress, ratio

SET_PATH = Path(__file__).resolve().parents[1] / "alina" / "team" / "routing_set.jsonl"
QUICK_EVERY = 8  # --quick: every 8th snapshot
E2E_TASKS: list[tuple[str, list[str]]] = [
    (
        "What is the BTC/USDT trend over the last day of data, and is the system healthy?",
        ["trader", "monitor", "alina"],
    ),
    (
        "Check the system health, then if healthy summarise the BTC trend and score the summary.",
        ["monitor", "trader", "optimizer", "alina"],
    ),
    ("Get the latest BTC price and score that price report.", ["trader", "optimizer", "alina"]),
    (
        "How much memory and CPU are we using, and how did bitcoin move over the last 6 hours?",
        ["monitor", "trader", "alina"],
    ),
]
QUICK_E2E = 1
QUICK_MAX_TURNS = 6  # --quick: caps the stock team's runs (ALINA's tasks need at most 4 turns)
MAX_E2E_REPS = 2
GOAL_ACCURACY = 0.95
GOAL_CALLS_PER_TURN = 0.2
GOAL_SPEEDUP = 2.0


def load_set(quick: bool) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in SET_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[::QUICK_EVERY] if quick else rows


# --------------------------------------------------------------------------- the two selectors


def _stub_agent_class() -> type:
    from autogen_agentchat.agents import BaseChatAgent
    from autogen_agentchat.base import Response
    from autogen_agentchat.messages import TextMessage

    class Stub(BaseChatAgent):
        """A participant that answers without a model: the selection is all we measure."""

        @property
        def produced_message_types(self) -> Sequence[type[TextMessage]]:
            return (TextMessage,)

        async def on_messages(self, messages: Any, cancellation_token: Any) -> Response:
            return Response(chat_message=TextMessage(source=self.name, content="(stub)"))

        async def on_reset(self, cancellation_token: Any) -> None:
            return None

    return Stub


async def stock_select(snapshot: list[dict[str, str]], descriptions: dict[str, str], client: Any) -> str:
    """Stock SelectorGroupChat's choice for one snapshot (default prompt, previous speaker set)."""
    from autogen_agentchat.messages import TextMessage
    from autogen_agentchat.teams import SelectorGroupChat

    stub = _stub_agent_class()
    agents = [stub(n, description=d) for n, d in descriptions.items()]
    team = SelectorGroupChat(agents, model_client=client, max_turns=1)
    previous = next((m["source"] for m in reversed(snapshot) if m["source"] != "user"), None)
    if previous is not None:
        state = await team.save_state()
        state["agent_states"]["SelectorGroupChatManager"]["previous_speaker"] = previous
        await team.load_state(state)
    task = [TextMessage(source=m["source"], content=m["content"]) for m in snapshot]
    result = await team.run(task=task)
    return result.messages[-1].source


async def labeled(rows: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    from alina.agents import agent_specs
    from alina.config import SPECIALISTS
    from alina.models import CallRecord, Governor, build_agent_client
    from alina.team import Router, build_router, parse_snapshot
    from alina.team._routing import profiles_from_prompts

    calls: list[CallRecord] = []
    client = build_agent_client(cfg, "alina", governor=Governor(1), listener=calls.append, label="selector")
    router = build_router(cfg, client=client)  # as in the team: the shared MiniLM embedder
    specs = agent_specs(cfg)
    profiles = profiles_from_prompts({n: s.prompt for n, s in specs.items()})
    rules_only = Router(profiles, embedder=None)  # rules and lexical BM25: no embeddings, no model
    no_model = Router(profiles)  # rules, lexical and semantic: everything but the model
    # Load the embedding model and embed the agents' documents before timing anything (a team
    # pays this once, on its first decision the rules leave open).
    t0 = time.perf_counter()
    await router.semantic.prepare()
    embed_load_s = time.perf_counter() - t0
    progress(f"semantic stage ready in {embed_load_s:.1f}s (active: {router.semantic.active})")
    descriptions = {n: specs[n].description for n in (*SPECIALISTS, "alina")}  # the team's order
    per: list[dict[str, Any]] = []
    for i, row in enumerate(rows, 1):
        mode = row.get("mode", "normal")
        router.set_mode(mode)
        rules_only.set_mode(mode)
        no_model.set_mode(mode)
        turns = parse_snapshot(row["snapshot"], router.names)
        before = len(calls)
        t0 = time.perf_counter()
        d = await router.route(turns)
        alina_s = time.perf_counter() - t0
        alina_calls = len(calls) - before
        before = len(calls)
        t0 = time.perf_counter()
        stock = await stock_select(row["snapshot"], descriptions, client)
        stock_s = time.perf_counter() - t0
        stock_calls = len(calls) - before
        per.append(
            {
                "id": row["id"],
                "split": row["split"],
                "needs_model": bool(row.get("needs_model")),
                "expected": row["expected"],
                "rules_only": rules_only.decide(turns).speaker,
                "no_model": no_model.decide(turns).speaker,
                "alina": d.speaker,
                "alina_method": d.method,
                "alina_calls": alina_calls,
                "alina_s": alina_s,
                "stock": stock,
                "stock_calls": stock_calls,
                "stock_s": stock_s,
            }
        )
        if i % 10 == 0 or i == len(rows):
            ok_a = sum(r["alina"] == r["expected"] for r in per)
            ok_s = sum(r["stock"] == r["expected"] for r in per)
            progress(f"labeled {i}/{len(rows)}: alina {ok_a}/{i} correct, stock {ok_s}/{i} correct")
    await client.close()
    return {"per_snapshot": per, "semantic_active": router.semantic.active, "embed_load_s": embed_load_s}


# --------------------------------------------------------------------------- end to end


def _clients(cfg: Any, calls: list[Any]) -> dict[str, Any]:
    from alina.config import ORCHESTRATOR, SPECIALISTS
    from alina.models import Governor, build_agent_client

    governor = Governor(cfg.team.max_concurrent_model_calls)
    clients = {
        n: build_agent_client(cfg, n, governor=governor, listener=calls.append)
        for n in (ORCHESTRATOR, *SPECIALISTS)
    }
    clients["selector"] = build_agent_client(
        cfg, ORCHESTRATOR, governor=governor, listener=calls.append, label="selector"
    )
    return clients


async def e2e_alina(cfg: Any, task: str) -> dict[str, Any]:
    from alina.team import TeamRunner

    calls: list[Any] = []
    runner = TeamRunner(cfg, clients=_clients(cfg, calls))
    try:
        t0 = time.perf_counter()
        r = await runner.run(task)
        wall = time.perf_counter() - t0
    finally:
        await runner.close()
    speakers = [
        e.source
        for e in r.events
        if e.source != "user" and e.type != "ToolCallRequestEvent" and e.type != "ToolCallExecutionEvent"
    ]
    return _e2e_row(wall, speakers, calls, r.status == "completed")


async def e2e_stock(cfg: Any, task: str) -> dict[str, Any]:
    from autogen_agentchat.base import ChatAgent, Team
    from autogen_agentchat.messages import BaseChatMessage
    from autogen_agentchat.teams import SelectorGroupChat

    from alina.agents import build_agent
    from alina.config import ORCHESTRATOR, SPECIALISTS
    from alina.team import termination

    calls: list[Any] = []
    clients = _clients(cfg, calls)
    agents: list[ChatAgent | Team] = [build_agent(n, cfg, clients[n]) for n in (*SPECIALISTS, ORCHESTRATOR)]
    team = SelectorGroupChat(agents, model_client=clients["selector"], termination_condition=termination(cfg))
    t0 = time.perf_counter()
    try:
        result = await asyncio.wait_for(team.run(task=task), timeout=cfg.team.wall_time_s)
        messages = [m for m in result.messages if isinstance(m, BaseChatMessage)]
    finally:
        wall = time.perf_counter() - t0
        for c in {id(c): c for c in clients.values()}.values():
            await c.close()
    speakers = [m.source for m in messages if m.source != "user"]
    return _e2e_row(wall, speakers, calls, bool(speakers) and speakers[-1] == ORCHESTRATOR)


def _e2e_row(wall: float, speakers: list[str], calls: list[Any], completed: bool) -> dict[str, Any]:
    selector = [c for c in calls if c.agent == "selector"]
    return {
        "wall_s": wall,
        "turns": len(speakers),
        "speakers": speakers,
        "completed": completed,
        "model_calls": len(calls),
        "selector_calls": len(selector),
        "selector_s": sum(c.seconds for c in selector),
    }


async def end_to_end(cfg: Any, tasks: list[tuple[str, list[str]]], reps: int) -> list[dict[str, Any]]:
    rows = []
    for rep in range(reps):
        for i, (task, expected) in enumerate(tasks, 1):
            a = await e2e_alina(cfg, task)
            progress(f"e2e rep {rep + 1} task {i}: alina {a['wall_s']:.1f}s {a['speakers']}")
            s = await e2e_stock(cfg, task)
            progress(f"e2e rep {rep + 1} task {i}: stock {s['wall_s']:.1f}s {s['speakers']}")
            rows.append({"rep": rep, "task": task, "expected": expected, "alina": a, "stock": s})
    return rows


# --------------------------------------------------------------------------- the benchmark


def _acc(rows: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] == r["expected"] for r in rows) / len(rows) if rows else float("nan")


def run(reps: int, quick: bool) -> Result:
    from alina.config import AlinaConfig
    from alina.models import allow_model_requests

    cfg = AlinaConfig()
    if quick:
        cfg.team.max_turns = QUICK_MAX_TURNS
    rows = load_set(quick)
    tasks = E2E_TASKS[:QUICK_E2E] if quick else E2E_TASKS
    e2e_reps = 1 if quick else max(1, min(reps, MAX_E2E_REPS))
    progress(f"labeled set: {len(rows)} snapshots; end to end: {len(tasks)} tasks x {e2e_reps}")
    with allow_model_requests(True):
        labeled_out = asyncio.run(labeled(rows, cfg))
        lab = labeled_out["per_snapshot"]
        e2e = asyncio.run(end_to_end(cfg, tasks, e2e_reps))

    held = [r for r in lab if r["split"] == "heldout"]
    tune = [r for r in lab if r["split"] == "tune"]
    clear = [r for r in lab if not r["needs_model"]]
    n = len(lab)
    alina_cpt = sum(r["alina_calls"] for r in lab) / n
    stock_cpt = sum(r["stock_calls"] for r in lab) / n
    a_wall = median([sum(r["alina"]["wall_s"] for r in e2e if r["rep"] == k) for k in range(e2e_reps)])
    s_wall = median([sum(r["stock"]["wall_s"] for r in e2e if r["rep"] == k) for k in range(e2e_reps)])
    speedup = ratio(s_wall, a_wall)
    a_turns = sum(r["alina"]["turns"] for r in e2e)
    s_turns = sum(r["stock"]["turns"] for r in e2e)

    def e2e_ok(side: str) -> str:
        return f"{sum(r[side]['speakers'] == r['expected'] for r in e2e)}/{len(e2e)}"

    table = [
        ["routing accuracy, all snapshots", _acc(lab, "alina"), _acc(lab, "stock")],
        ["routing accuracy, held-out split", _acc(held, "alina"), _acc(held, "stock")],
        ["routing accuracy, tune split", _acc(tune, "alina"), _acc(tune, "stock")],
        ["accuracy, rules + lexical only (no embeddings, no model)", _acc(lab, "rules_only"), "-"],
        ["accuracy, rules + lexical + semantic (no model)", _acc(lab, "no_model"), "-"],
        ["accuracy on clear snapshots, rules + lexical + semantic (no model)", _acc(clear, "no_model"), "-"],
        [
            "accuracy on needs_model snapshots",
            _acc([r for r in lab if r["needs_model"]], "alina"),
            _acc([r for r in lab if r["needs_model"]], "stock"),
        ],
        ["selector model calls per turn (labeled)", alina_cpt, stock_cpt],
        [
            "selector s per turn (labeled, mean)",
            sum(r["alina_s"] for r in lab) / n,
            sum(r["stock_s"] for r in lab) / n,
        ],
        [f"end-to-end wall s ({len(tasks)} tasks, median of {e2e_reps})", a_wall, s_wall],
        ["end-to-end turns (agent messages)", a_turns, s_turns],
        [
            "end-to-end selector calls per turn",
            sum(r["alina"]["selector_calls"] for r in e2e) / max(1, a_turns),
            sum(r["stock"]["selector_calls"] for r in e2e) / max(1, s_turns),
        ],
        [
            "end-to-end runs completed (ALINA answered)",
            f"{sum(r['alina']['completed'] for r in e2e)}/{len(e2e)}",
            f"{sum(r['stock']['completed'] for r in e2e)}/{len(e2e)}",
        ],
        ["end-to-end speaker sequence as expected", e2e_ok("alina"), e2e_ok("stock")],
    ]
    methods: dict[str, int] = {}
    for r in lab:
        methods[r["alina_method"]] = methods.get(r["alina_method"], 0) + 1
    notes = [
        f"labeled set: {n} snapshots ({len(held)} held-out, {len(tune)} tune, "
        f"{n - len(clear)} marked needs_model)"
        + (f"; quick subset: every {QUICK_EVERY}th" if quick else "."),
        f"ALINA's decisions by method: {dict(sorted(methods.items()))}.",
        "semantic stage: all-MiniLM-L6-v2 in process, "
        + ("active" if labeled_out["semantic_active"] else "NOT available (lexical fallback)")
        + "; loading it and embedding the agents' descriptions and "
        f"examples took {labeled_out['embed_load_s']:.1f}s before the first snapshot (not in the "
        "per-turn times). Its thresholds were chosen on the tune split only.",
        "stock = SelectorGroupChat's own model selection (default prompt, case-sensitive name match, up to 3 "
        "attempts, then the previous speaker); same embedded model, same descriptions.",
        f"end-to-end speedup = stock wall / ALINA wall = {speedup:.2f}x; every agent turn runs the same real "
        "agents and tools on both sides.",
    ]
    return Result(
        name="routing",
        title="Routing: ALINA's router vs stock SelectorGroupChat (embedded SmolLM2-135M)",
        headers=["figure", "ALINA", "stock"],
        rows=table,
        goals=[
            Goal("routing_accuracy", _acc(lab, "alina"), GOAL_ACCURACY),
            Goal("selector_calls_per_turn", alina_cpt, GOAL_CALLS_PER_TURN, higher_is_better=False),
            Goal("end_to_end_speedup", speedup, GOAL_SPEEDUP),
        ],
        params={
            "snapshots": n,
            "quick": quick,
            "e2e_tasks": len(tasks),
            "e2e_reps": e2e_reps,
            "max_turns": cfg.team.max_turns,
            "model": cfg.models["embedded"].model,
            "temperature": cfg.models["embedded"].temperature,
        },
        notes=notes,
        raw={"labeled": lab, "end_to_end": e2e},
    )
