"""Example skill plugin: position sizing for the trader (pure arithmetic, no side effects).

Drop this file into the folder named by ``skills.plugin_dir`` (or publish its module under the
``alina.skills`` entry-point group) and the trader gets a ``position_size`` tool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alina.skills.loader import SkillRegistry


def position_size(equity: float, risk_pct: float = 1.0, stop_distance_pct: float = 2.0) -> str:
    """Size a position so that a stop-loss hit loses only risk_pct of the equity.

    Args:
        equity: Account equity in the quote currency, e.g. 10000.
        risk_pct: Percent of the equity to risk on this trade, e.g. 1.
        stop_distance_pct: Distance from entry to stop-loss in percent of the entry price, e.g. 2.
    """
    if equity <= 0 or risk_pct <= 0 or stop_distance_pct <= 0:
        return "error: equity, risk_pct and stop_distance_pct must all be positive"
    notional = equity * risk_pct / stop_distance_pct
    risked = equity * risk_pct / 100
    return f"position notional {notional:.2f} ({notional / equity:.1%} of equity), risking {risked:.2f}"


def register(skills: SkillRegistry) -> None:
    """The plugin hook: declare this plugin's skills."""
    skills.add(position_size, agents=["trader"], timeout_s=2)
