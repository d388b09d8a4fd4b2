"""The composition root: :class:`Alina` builds and owns everything a run needs.

One ``Alina`` object is one application: its config, its Postgres pools, Redis, system mode,
trading desk (with its order intents), tool-call recorder, skill loader, vector memory and team.
Each part is opened on first use (``runs.list()`` opens no model; ``run()`` opens them all),
owned by the application and closed, in reverse order, by :meth:`Alina.close`. The parts the
skills use (desk, market data, loader, the monitor's status line) are handed down with
:func:`~alina.skills.bindings.bind_skills` around everything the application does, so two
applications in one process each trade on their own desk.

The CLI's ``run``, ``runs``, ``memory``, ``backtest`` and ``status`` commands are written on this
class; a notebook uses it directly (or its blocking twin, :meth:`Alina.sync`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from alina.api._results import RunReport
from alina.api._sections import Memory, Prompts, Runs, Trading
from alina.config import AlinaConfig, load_config
from alina.runtime.status import MonitorStatus
from alina.skills.bindings import SkillBindings, bind_skills
from alina.skills.loader import SkillLoader
from alina.trading.market_data import MarketData

if TYPE_CHECKING:
    from alina.api._sync import SyncAlina
    from alina.memory_store import RunStore
    from alina.memory_store.database import Database
    from alina.memory_store.hot import HotState
    from alina.memory_store.vector import VectorMemory
    from alina.runtime.modes import SystemMode
    from alina.skills.recorder import PostgresToolCallRecorder
    from alina.team import RunEvent, TeamRunner
    from alina.trading.desk import TradingDesk
    from alina.trading.intents import PgIntentStore

__all__ = ["Alina", "ChatSession"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Alina:
    """AgentAlina as one object: ``async with Alina.from_config() as app: await app.run(task)``.

    Sections: :attr:`memory` (search, add, forget, graph), :attr:`trading` (ticker, balances,
    positions, orders, place/cancel, backtest), :attr:`prompts` (history, diff, rollback),
    :attr:`runs` (list, get, report). :meth:`status` is ``alina status`` as a dict.
    """

    def __init__(
        self,
        config: AlinaConfig,
        *,
        live: bool = False,
        on_event: Callable[[RunEvent], None] | None = None,
        on_chunk: Callable[[str, str], None] | None = None,
    ) -> None:
        """An application on ``config`` (nothing is opened until first use or ``async with``).

        ``live``: allow live trading (the config must also say ``trading.mode: live`` and the
        keys must be in the environment). ``on_event``: called with every message of a run as
        it happens (the CLI prints them). ``on_chunk(agent, text)``: streamed pieces of the
        agents' text as the model writes them (shown, never stored; the console chat).
        """
        self.config = config
        self.live = live
        self.on_event = on_event
        self.on_chunk = on_chunk
        self.market_data = MarketData()
        self.skills = SkillLoader.from_config(config)
        self.monitor_status = MonitorStatus()
        self.memory = Memory(self)
        self.trading = Trading(self)
        self.prompts = Prompts(self)
        self.runs = Runs(self)
        self._bindings = SkillBindings(
            desk=self.desk,
            market_data=self.market_data,
            loader=self.skills,
            status_line=self.monitor_status.line,
            alerts_detail=self.monitor_status.detail,
        )
        self._stack = AsyncExitStack()
        self._parts: dict[str, Any] = {}
        self._opening: dict[str, asyncio.Future[Any]] = {}
        self._closed = False

    @classmethod
    def from_config(
        cls,
        path: str | Path | None = None,
        *,
        live: bool = False,
        on_event: Callable[[RunEvent], None] | None = None,
        **overrides: Any,
    ) -> Alina:
        """Load ``path`` (default: ``$ALINA_CONFIG`` or ``./config.yaml``, else the built-in
        defaults), apply ``overrides`` (``team__max_turns=2`` sets ``team.max_turns``; the same
        ``ALINA__`` environment overrides as the CLI apply first) and return the application.

        Raises:
            ConfigError: the file or an override is invalid (every problem listed).
        """
        dotted = {key.replace("__", "."): value for key, value in overrides.items()}
        return cls(load_config(path, overrides=dotted or None), live=live, on_event=on_event)

    @classmethod
    def sync(cls, path: str | Path | None = None, **kwargs: Any) -> SyncAlina:
        """The same application with blocking methods, for notebooks and scripts (safe inside
        Jupyter's running event loop: the application runs on a loop of its own thread).
        Arguments as :meth:`from_config`; ``close()`` it (or use ``with``) when done."""
        from alina.api._sync import SyncAlina

        return SyncAlina(cls.from_config(path, **kwargs))

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Alina:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Price model calls at the configured rates (nothing else is opened before it is used)."""
        from alina.monitoring.metrics import configure_costs

        m = self.config.monitoring
        configure_costs(m.cost_per_1k_prompt_tokens, m.cost_per_1k_completion_tokens, m.cost_per_cpu_second)

    async def close(self) -> None:
        """Close every part that was opened, the last opened first (the team writes its pending
        memories and events before the stores go)."""
        self._closed = True
        await self._stack.aclose()
        self._parts.clear()
        self._opening.clear()

    async def _part(self, name: str, make: Callable[[], Awaitable[T]]) -> T:
        """The part ``name``, made by ``make()`` on first use (concurrent callers share it)."""
        if name in self._parts:
            return self._parts[name]
        if self._closed:
            raise RuntimeError("this Alina application is closed; open a new one")
        if name not in self._opening:
            self._opening[name] = asyncio.ensure_future(make())
        try:
            part = await asyncio.shield(self._opening[name])
        except BaseException:
            self._opening.pop(name, None)
            raise
        self._parts[name] = part
        return part

    def bound(self) -> Any:
        """A context manager in which skills called directly use this application's parts."""
        return bind_skills(self._bindings)

    # ------------------------------------------------------------------ parts

    async def database(self) -> Database:
        """The one Postgres pool every repository of this application shares (the schema is
        migrated once, when it opens)."""

        async def make() -> Database:
            from alina.memory_store.database import Database

            pg = self.config.postgres
            return await self._stack.enter_async_context(
                Database(pg.dsn(), connect_timeout=pg.connect_timeout_s)
            )

        return await self._part("database", make)

    async def store(self) -> RunStore:
        """The run store (on :meth:`database`)."""

        async def make() -> RunStore:
            from alina.memory_store import RunStore

            pg = self.config.postgres
            store = RunStore(await self.database(), connect_timeout=int(pg.connect_timeout_s))
            await store.open()
            self._stack.push_async_callback(store.close)
            return store

        return await self._part("store", make)

    async def hot(self) -> HotState:
        """Redis hot state (live run positions, recent messages)."""

        async def make() -> HotState:
            from alina.memory_store.hot import HotState

            hot = HotState(self.config.redis.url())
            self._stack.push_async_callback(hot.close)
            return hot

        return await self._part("hot", make)

    async def modes(self) -> SystemMode:
        """The shared system mode (normal, degraded, safe, halt), refreshed once on open."""

        async def make() -> SystemMode:
            from alina.runtime.modes import SystemMode

            cfg = self.config
            modes = SystemMode.for_config(cfg)
            self._stack.push_async_callback(modes.close)
            await modes.refresh()
            self.monitor_status.mode = lambda: modes.current
            self.monitor_status.dsn = cfg.postgres.dsn()
            return modes

        return await self._part("modes", make)

    async def intents(self) -> PgIntentStore:
        """The order-intent store (orders exactly once across restarts; the paper account)."""

        async def make() -> PgIntentStore:
            from alina.trading.intents import PgIntentStore

            intents = PgIntentStore(await self.database())
            await intents.open()
            self._stack.push_async_callback(intents.close)
            return intents

        return await self._part("intents", make)

    async def desk(self) -> TradingDesk:
        """This application's trading desk: paper by default, every order through the risk guard
        and recorded as an intent; refuses orders while the system mode is safe or halt."""

        async def make() -> TradingDesk:
            from alina.trading.desk import open_desk

            intents = await self.intents()
            modes = await self.modes()
            desk = await open_desk(
                self.config.trading, live=self.live, intents=intents, mode_source=lambda: modes.current
            )
            self._stack.push_async_callback(desk.close)
            return desk

        return await self._part("desk", make)

    async def recorder(self) -> PostgresToolCallRecorder:
        """The tool-call recorder (every call, arguments masked, in ``tool_calls``); the
        application's skill loader records through it from now on."""

        async def make() -> PostgresToolCallRecorder:
            from alina.skills.recorder import PostgresToolCallRecorder

            recorder = await self._stack.enter_async_context(PostgresToolCallRecorder(await self.database()))
            self.skills.recorder = recorder
            return recorder

        return await self._part("recorder", make)

    async def vector_memory(self) -> VectorMemory | None:
        """The team's vector memory (Chroma + the embedding model), or None when it is disabled
        or cannot open (logged; runs then go without retrieval)."""

        async def make() -> VectorMemory | None:
            from alina.team import open_memory

            memory = await open_memory(self.config)
            if memory is not None:
                self._stack.push_async_callback(memory.close)
            return memory

        return await self._part("vector_memory", make)

    async def runner(self) -> TeamRunner:
        """ALINA's team, with everything it needs opened (models load here)."""

        async def make() -> TeamRunner:
            from alina.memory_store.graph import MemoryGraph
            from alina.memory_store.optimizer import with_model_choices
            from alina.memory_store.prompts import PromptVersions
            from alina.memory_store.writer import EventWriter
            from alina.team import RunMemoryWriter, TeamRunner

            cfg = self.config
            # Chroma and the embedding model (~4 s) open while the rest does.
            opening = asyncio.ensure_future(self.vector_memory())
            try:
                store, hot, modes = await self.store(), await self.hot(), await self.modes()
                desk = await self.desk()
                await self.recorder()
            finally:
                memory = await opening
            writer = RunMemoryWriter.from_config(cfg, memory=memory, graph=MemoryGraph(store), store=store)
            events = EventWriter.from_config(store, cfg)  # while Postgres is away: a local spool file
            self._stack.push_async_callback(_close_events, events)  # after the runner: its last events
            with self.bound():
                runner = TeamRunner(
                    await with_model_choices(cfg),  # the optimizer's model ladder choices
                    sink=store,
                    hot=hot,
                    on_event=self._on_event,
                    memory=memory,
                    memory_writer=writer,
                    events=events,
                    modes=modes,
                    order_symbols=lambda: desk.exchange.symbols,
                    prompt_source=PromptVersions.from_config(cfg).active_prompts,
                    on_chunk=self.on_chunk,
                )
            self._stack.push_async_callback(runner.close)
            return runner

        return await self._part("runner", make)

    def _on_event(self, event: RunEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # ------------------------------------------------------------------ runs

    async def run(self, task: str, *, run_id: str | None = None, mode: str | None = None) -> RunReport:
        """Run ``task`` on ALINA's team to completion, a limit or a failure, checkpointing every
        turn; returns the :class:`RunReport` (never raises for a model failure: the report says
        ``failed`` and why).

        ``run_id``: choose the id (default: a new one). ``mode``: ``safe`` makes this
        application's runs read-only (no order reaches the trader), ``normal`` restores the
        shared mode.

        Raises:
            ValueError: ``task`` is empty or ``mode`` unknown.
            StoreUnavailableError: Postgres cannot be reached.
        """
        if not task or not task.strip():
            raise ValueError("the task is empty: say what the team should do")
        return await self._drive(task, run_id=run_id or uuid.uuid4().hex, mode=mode)

    async def resume(self, run_id: str, *, mode: str | None = None) -> RunReport:
        """Continue an interrupted run from its last checkpoint.

        Raises:
            ResumeError: unknown run (``AlreadyCompleted``: it already completed).
        """
        return await self._drive(None, run_id=run_id, mode=mode)

    async def _drive(self, task: str | None, *, run_id: str, mode: str | None) -> RunReport:
        from alina.skills.recorder import run_scope

        if mode is not None and mode not in ("normal", "safe"):
            raise ValueError(f"mode must be normal or safe (got {mode!r})")
        runner = await self.runner()
        if mode is not None:
            runner.set_mode(mode)
        with self.bound(), run_scope(run_id):
            if task is None:
                result = await runner.resume(run_id)
            else:
                result = await runner.run(task, run_id=run_id)
        return RunReport.from_result(result)

    def chat(self) -> ChatSession:
        """A conversation: each :meth:`ChatSession.send` is a task or a follow-up that sees the
        earlier turns (the team keeps its conversation between runs)."""
        return ChatSession(self)

    async def status(
        self, *, window_s: float = 3600.0, last_n: int = 20, usd_per_1k_tokens: float = 0.0
    ) -> dict[str, Any]:
        """``alina status`` as a dict: ``stores``, ``mode``, ``alerts``, ``transitions``,
        ``model_calls``, ``usage`` (over ``window_s``), ``scores`` (mean of the last ``last_n``
        per agent), ``paper`` and ``runs``. Never raises for a store that is down: its sections
        say ``available: false`` and why."""
        from alina.runtime.status import gather_status

        return await gather_status(
            self.config, window_s=window_s, score_window=last_n, usd_per_1k_tokens=usd_per_1k_tokens
        )


class ChatSession:
    """A conversation with ALINA's team (see :meth:`Alina.chat`)."""

    def __init__(self, app: Alina) -> None:
        self.app = app
        self.reports: list[RunReport] = []
        """Every turn's report, oldest first."""

    async def send(self, text: str) -> RunReport:
        """One task or follow-up; returns its run's report."""
        report = await self.app.run(text)
        self.reports.append(report)
        return report

    @property
    def answers(self) -> list[str]:
        """ALINA's answers so far, oldest first."""
        return [r.answer for r in self.reports]


async def _close_events(events: Any) -> None:
    """Write the events still queued; a store that went away loses the log, never the run."""
    try:
        await events.close()
    except Exception as exc:
        log.warning("%s operational events not written (%s)", events.pending, exc)
