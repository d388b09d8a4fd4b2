"""The sections of :class:`alina.Alina`: memory, trading, prompts and recorded runs."""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alina.api._results import Message, RunReport, Score, tool_calls_of

if TYPE_CHECKING:
    from alina.api._app import Alina
    from alina.memory_store.commands import SearchReport, StatsReport
    from alina.memory_store.graph import Edge, EntityRef
    from alina.memory_store.prompts import PromptVersion
    from alina.memory_store.vector import VectorMemory
    from alina.trading.backtest import BacktestResult
    from alina.trading.orders import Balance, Order, Position, Ticker

__all__ = ["EntityNotFound", "Memory", "Prompts", "Runs", "Trading", "backtest"]


class EntityNotFound(LookupError):
    """The memory graph has no entity of that name."""


class Memory:
    """What the team remembers: vector memories (RAG) and the graph of entities."""

    def __init__(self, app: Alina) -> None:
        self._app = app

    async def _vectors(self) -> VectorMemory:
        """The team's memory when it is open, else one for these commands (errors raised)."""
        app = self._app
        if "vector_memory" in app._parts and app._parts["vector_memory"] is not None:
            return app._parts["vector_memory"]

        async def make() -> VectorMemory:
            from alina.memory_store.vector import VectorMemory

            memory = VectorMemory(app.config.memory, base_dir=app.config.data_dir())
            app._stack.push_async_callback(memory.close)
            return memory

        return await app._part("vectors", make)

    async def search(
        self,
        query: str,
        *,
        agent: str | None = None,
        kinds: Sequence[str] | None = None,
        top_k: int = 5,
        min_score: float | None = None,
    ) -> SearchReport:
        """Ranked memories for ``query`` (``.hits``: text, score, kind, scope, provenance), as
        ``agent`` would retrieve them (its scope and the shared one), or from every scope.

        Raises:
            ValueError: the query is empty or ``agent`` is unknown.
        """
        from alina.memory_store.commands import search_memory

        if not query.strip():
            raise ValueError("the search query is empty")
        if agent is not None:
            self._app_agent(agent)
        return await search_memory(
            await self._vectors(), query, agent=agent, kinds=kinds, top_k=top_k, min_score=min_score
        )

    async def add(self, text: str, *, kind: str = "note", scope: str = "shared") -> str:
        """Remember ``text`` (a note, lesson, decision, alert or outcome) for every agent
        (``scope="shared"``) or one; returns its id. The id is the content's: adding the same
        note twice stores it once.

        Raises:
            ValueError: empty text, unknown kind or agent.
        """
        from alina.memory_store.vector import KINDS, SHARED

        text = text.strip()
        if not text:
            raise ValueError("the text is empty")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
        if scope != SHARED:
            self._app_agent(scope)
        memory_id = hashlib.sha256(f"{scope}\0{kind}\0{text}".encode()).hexdigest()[:32]
        return await (await self._vectors()).remember(text, kind=kind, scope=scope, id=memory_id)

    async def forget(self, ids: Sequence[str]) -> int:
        """Delete memories by id from every scope; returns how many existed."""
        memory = await self._vectors()
        before = await memory.count()
        await memory.delete(list(ids))
        return int(before - await memory.count())

    async def graph(self, entity: str, *, limit: int = 50) -> list[Edge]:
        """The relations around ``entity`` (``KIND:NAME`` such as ``asset:BTC/USDT``, or a bare
        name), with the run and message each came from.

        Raises:
            EntityNotFound: no such entity in the graph.
        """
        from alina.memory_store.graph import MemoryGraph, parse_ref

        graph = MemoryGraph(await self._app.store())
        found: list[EntityRef] = await graph.find(parse_ref(entity))
        if not found:
            raise EntityNotFound(f"no entity {entity!r} in the memory graph")
        return [e for ref in found for e in await graph.neighbours(ref, limit=limit)]

    async def relate(self, src: str, rel: str, dst: str, *, fact: str | None = None) -> int:
        """Teach the graph ``src -rel-> dst`` (entities as ``KIND:NAME``, e.g. ``asset:BTC/USDT``),
        with no run as its source; returns the relation's id.

        Raises:
            ValueError: an entity is not ``KIND:NAME`` of a known kind, or ``rel`` is unknown.
        """
        from alina.memory_store.graph import KINDS, MemoryGraph, parse_ref

        refs = [parse_ref(x) for x in (src, dst)]
        for given, ref in zip((src, dst), refs, strict=True):
            if isinstance(ref, str):
                raise ValueError(
                    f"entity must be KIND:NAME with KIND one of {', '.join(KINDS)} (got {given!r})"
                )
        graph = MemoryGraph(await self._app.store())
        return await graph.relate(refs[0], rel, refs[1], fact=fact)  # type: ignore[arg-type]

    async def stats(self) -> StatsReport:
        """Counts and sizes per store (Postgres tables, Redis keys, vectors)."""
        from alina.memory_store.commands import memory_stats

        cfg = self._app.config
        return await memory_stats(
            pg_dsn=cfg.postgres.dsn(), redis_url=cfg.redis.url(), memory=await self._vectors()
        )

    def _app_agent(self, name: str) -> None:
        agents = self._app.config.agents
        if name not in agents:
            raise ValueError(f"no agent {name!r} (agents: {', '.join(sorted(agents))})")


class Trading:
    """The application's trading desk (paper unless live was opted into) and backtests."""

    def __init__(self, app: Alina) -> None:
        self._app = app

    async def ticker(self, symbol: str = "BTC/USDT") -> Ticker:
        """The current price of ``symbol`` (replayed candles on the paper desk)."""
        return await (await self._app.desk()).ticker(symbol)

    async def balances(self) -> dict[str, Balance]:
        """Free and reserved balance per currency."""
        return await (await self._app.desk()).balances()

    async def positions(self) -> list[Position]:
        """Open positions with entry price, last price and profit or loss."""
        return await (await self._app.desk()).positions()

    async def orders(self, symbol: str | None = None) -> list[Order]:
        """Resting (unfilled) orders, of ``symbol`` or all pairs."""
        return await (await self._app.desk()).open_orders(symbol)

    async def place_order(
        self, symbol: str, side: str, amount: float, *, order_type: str = "market", price: float | None = None
    ) -> Order | None:
        """Place an order through the risk guard (recorded as an intent before it is sent);
        returns the order (None when its details are not known yet).

        Raises:
            RiskRejection: the risk guard refused it (the rule says why).
            TradingError: safe mode, invalid order, exchange failure.
        """
        placed = await (await self._app.desk()).place_order(symbol, side, order_type, amount, price)
        return placed.order

    async def cancel_order(self, order_id: str) -> Order:
        """Cancel a resting order."""
        return await (await self._app.desk()).cancel_order(order_id)

    async def pnl(self) -> dict[str, Any]:
        """Equity and profit or loss of the account."""
        return await (await self._app.desk()).pnl()

    async def backtest(self, symbol: str = "BTC/USDT", **kwargs: Any) -> BacktestResult:
        """:func:`backtest` (no desk needed: candles in, report and equity curve out)."""
        return backtest(symbol, **kwargs)


def backtest(
    symbol: str = "BTC/USDT",
    *,
    strategy: str | None = None,
    signals: str | Path | None = None,
    params: dict[str, Any] | None = None,
    data: str | Path | None = None,
    fee: float = 0.001,
    cash: float = 10_000.0,
) -> BacktestResult:
    """Backtest a long-only built-in ``strategy`` (with ``params``) or replay recorded
    ``signals`` on the candles of ``data`` (default: the bundled candles of ``symbol``); trades
    at the next open, fees in the quote currency. ``result.report`` has the figures,
    ``result.equity`` the equity curve (one value per candle of ``result.data``).

    Raises:
        BacktestInputError: bad data or signals file, strategy or parameter (the message says which).
    """
    from alina.trading.backtest import BacktestInputError, load_candles, run_backtest
    from alina.trading.market_data import UnknownSymbolError, available_symbols, normalize_symbol
    from alina.trading.strategies import get_strategy, load_signals, targets_from_signals

    if (strategy is None) == (signals is None):
        raise BacktestInputError("give exactly one of --strategy NAME or --signals FILE")
    if data is None:
        try:
            symbol = normalize_symbol(symbol, available_symbols())
        except UnknownSymbolError as exc:
            raise BacktestInputError(f"{exc}; pass --data FILE for other pairs") from None
        data = available_symbols()[symbol]
    candles = load_candles(data)
    chosen_params: dict[str, Any]
    if signals is not None:
        if params:
            raise BacktestInputError("--param applies to --strategy, not to --signals")
        targets, ignored = targets_from_signals(load_signals(signals), candles)
        name, chosen_params = "signals", {"file": str(signals), "after_data_ignored": ignored}
    else:
        chosen = get_strategy(strategy or "")
        typed = chosen.params({k: str(v) for k, v in (params or {}).items()})
        name, targets, chosen_params = chosen.name, chosen.targets(candles, typed), dict(typed)
    return run_backtest(
        candles, targets, fee_rate=fee, cash=cash, symbol=symbol, strategy=name, params=chosen_params
    )


class Prompts:
    """The versions of the agents' system prompts (stored in Postgres)."""

    def __init__(self, app: Alina) -> None:
        self._app = app

    async def _versions(self) -> Any:
        from alina.memory_store.prompts import PromptVersions

        await self._app.store()  # the schema is migrated when the store opens
        pg = self._app.config.postgres
        return PromptVersions(pg.dsn(), connect_timeout=int(pg.connect_timeout_s))

    async def history(self, agent: str | None = None) -> list[PromptVersion]:
        """Every stored version of ``agent``'s prompt (all agents when None), oldest first;
        ``in_use`` marks the one the agent runs with."""
        from alina.config import ORCHESTRATOR, SPECIALISTS

        versions = await self._versions()
        names = [agent] if agent else [ORCHESTRATOR, *SPECIALISTS]
        return [v for name in names for v in await versions.history(name)]

    async def get(self, agent: str, version: int | None = None) -> PromptVersion:
        """One version (default: the one in use), with its full system text."""
        return await (await self._versions()).get(agent, version)

    async def diff(self, agent: str, a: int, b: int) -> str:
        """The unified diff of two versions' system texts ("" when they are equal)."""
        return await (await self._versions()).diff(agent, a, b)

    async def body(self, agent: str, version: int | None = None) -> str:
        """The revisable part of a version's system text (default: the one in use): everything
        before the protected section, which no revision may change."""
        from alina.meta_prompts import split_protected

        return split_protected((await self.get(agent, version)).system)[0]

    async def propose(self, agent: str, body: str, *, reason: str | None = None) -> PromptVersion:
        """Store ``body`` (the revisable part, see :meth:`body`) followed by the protected section
        of the version in use as a candidate version of ``agent``'s prompt. It is checked first:
        a text tried before, truncated or ending mid-sentence is stored as ``rejected`` with the
        problems as its reason. A candidate is not used until :meth:`promote`."""
        from alina.meta_prompts import split_protected
        from alina.meta_prompts._prompts import compose

        protected = split_protected((await self.get(agent)).system)[1]
        system = compose(body, protected or "")
        return await (await self._versions()).add_candidate(agent, system, reason=reason)

    async def promote(self, agent: str, version: int, *, reason: str) -> PromptVersion:
        """Put candidate ``version`` into use now (the optimizer does this after its gate)."""
        return await (await self._versions()).promote(agent, version, reason=reason)

    async def rollback(self, agent: str, version: int, *, reason: str) -> PromptVersion:
        """Put an earlier version back into use now (as a new version, ``reason`` recorded);
        the agents take it on their next run."""
        if not reason.strip():
            raise ValueError("the reason is empty: say why (it is recorded)")
        return await (await self._versions()).rollback(agent, version, reason=reason)


class Runs:
    """Recorded runs (Postgres), and the live position of a running one (Redis)."""

    def __init__(self, app: Alina) -> None:
        self._app = app

    async def list(self, limit: int = 20) -> builtins.list[dict[str, Any]]:
        """Up to ``limit`` runs, newest first (``interrupted``: left running by a dead process)."""
        return await (await self._app.store()).list_runs(limit=limit)

    async def get(self, run_id: str) -> dict[str, Any] | None:
        """One run with its ``messages``, ``decisions`` and ``evaluations`` (None if unknown);
        for a run still going, ``live`` holds its position from Redis (turn, last speaker and
        the newest messages, which may be ahead of Postgres)."""
        run = await (await self._app.store()).get_run(run_id)
        if run is not None and run["status"] == "running" and not run.get("interrupted"):
            hot = await self._app.hot()
            status = await hot.run_status(run_id)
            if status is not None:
                run["live"] = {**status, "recent": await hot.recent(run_id)}
        return run

    async def scores(self, *, agent: str | None = None, limit: int = 500) -> builtins.list[dict[str, Any]]:
        """The newest ``limit`` evaluations (ALINA's answer checks, the specialists' output
        checks), oldest first: run_id, message_seq, agent, name, score, passed, prompt_version,
        model, created_at; of one ``agent`` or all."""
        from psycopg.rows import dict_row

        store = await self._app.store()
        where, params = ("WHERE agent = %s", (agent, limit)) if agent else ("", (limit,))
        async with store._connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT run_id, message_seq, agent, name, score, passed, prompt_version, model, created_at "
                f"FROM evaluations {where} ORDER BY created_at DESC, id DESC LIMIT %s",
                params,
            )
            rows = await cur.fetchall()
        return list(reversed(rows))

    async def report(self, run_id: str) -> RunReport:
        """A recorded run as a :class:`RunReport` (messages, tool calls, tokens, latencies and
        scores from Postgres; routing decisions are not stored with it).

        Raises:
            LookupError: no run with that id.
        """
        run = await self.get(run_id)
        if run is None:
            raise LookupError(f"no run with id {run_id!r}")
        messages = [
            Message(
                m["seq"],
                m["source"],
                m["type"],
                m["content"],
                m["prompt_tokens"],
                m["completion_tokens"],
                m["latency_ms"],
            )
            for m in run["messages"]
        ]
        scores = [
            Score(e["message_seq"], e["agent"], e["name"], float(e["score"]), bool(e["passed"]))
            for e in run.get("evaluations", [])
        ]
        answer_check = next(
            (e.get("details") for e in run.get("evaluations", []) if e["name"] == "answer_check"), None
        )
        answer = next((m.content for m in reversed(messages) if m.source == "alina"), "")
        return RunReport(
            run_id=run["id"],
            task=run["task"],
            status=run["status"],
            stop_reason="",
            answer=answer,
            answer_check=answer_check,
            error=run.get("error"),
            mode="normal",
            turns=int(run.get("turns") or 0),
            model_calls=int(run.get("model_calls") or 0),
            cached_calls=int(run.get("cached_calls") or 0),
            prompt_tokens=int(run.get("prompt_tokens") or 0),
            completion_tokens=int(run.get("completion_tokens") or 0),
            wall_s=float(run.get("wall_s") or 0.0),
            messages=messages,
            tool_calls=tool_calls_of(messages, run.get("tool_data")),
            scores=scores,
        )
