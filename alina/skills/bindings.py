"""What the skills work with, handed down by the application that owns it.

The trader's desk, the market data, the skill loader and the monitor's status line belong to an
:class:`alina.Alina` application, not to the process: the application opens
:func:`bind_skills` around everything it does (building its team, running a task, calling a
skill for a notebook), and the skills read :func:`current_bindings`. A context variable carries
them, so they reach the tool calls AutoGen makes in tasks started inside the block, and two
applications in one process (two notebooks cells, two tests) each see their own desk.

Outside any binding there is no desk (the trading skills answer ``error: no trading desk``);
the market skills read the packaged candles and the team takes the installed plugins: read-only
defaults, built once. A script or a test with a desk of its own binds it with :func:`bind_desk`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alina.skills.loader import SkillLoader
    from alina.trading.desk import TradingDesk
    from alina.trading.market_data import MarketData

__all__ = ["SkillBindings", "bind_desk", "bind_skills", "current_bindings"]


@dataclass(frozen=True)
class SkillBindings:
    """One application's objects, as the skills see them (None: the skill's own default)."""

    desk: Callable[[], Awaitable[TradingDesk]] | None = None
    """Returns the application's trading desk (opened on first use)."""
    market_data: MarketData | None = None
    """The candles behind ``get_price`` and ``candle_summary``."""
    loader: SkillLoader | None = None
    """The skill loader the application's agents take their tools from."""
    status_line: Callable[[], str] | None = None
    """The monitor's one-line view of the system mode and open alerts."""
    alerts_detail: Callable[[], str] | None = None
    """The open alerts and the actions waiting for an operator ("" when none)."""


_BINDINGS: ContextVar[SkillBindings | None] = ContextVar("alina_skill_bindings", default=None)


@contextmanager
def bind_skills(bindings: SkillBindings) -> Iterator[SkillBindings]:
    """Make ``bindings`` what every skill called inside this block (and in the tasks it starts)
    works with."""
    token = _BINDINGS.set(bindings)
    try:
        yield bindings
    finally:
        _BINDINGS.reset(token)


def current_bindings() -> SkillBindings | None:
    """The innermost :func:`bind_skills`, or None (no desk; packaged candles, installed plugins)."""
    return _BINDINGS.get()


@contextmanager
def bind_desk(desk: TradingDesk, *, mode: Callable[[], str] | None = None) -> Iterator[SkillBindings]:
    """Make ``desk`` the trading skills' desk inside this block (what else is bound stays).
    ``mode``: the system mode the desk reads before placing (``"safe"`` and ``"halt"`` refuse)."""
    if mode is not None:
        desk.mode_source = mode

    async def the_desk() -> TradingDesk:
        return desk

    with bind_skills(replace(current_bindings() or SkillBindings(), desk=the_desk)) as bindings:
        yield bindings
