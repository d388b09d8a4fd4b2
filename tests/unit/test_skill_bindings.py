"""Skills take the desk, market data and loader of the application in use: two applications in
one process each trade on their own desk (issue: no module-level desk, mode or loader)."""

from __future__ import annotations

import asyncio

from alina.api import Alina
from alina.config import AlinaConfig
from alina.skills import trading as trading_skills
from alina.skills.bindings import SkillBindings, bind_desk, bind_skills, current_bindings
from alina.skills.builtin import market_data
from alina.skills.loader import SkillLoader, default_loader
from alina.trading.config import TradingConfig
from alina.trading.desk import TradingDesk, open_desk
from alina.trading.market_data import MarketData


async def test_two_bindings_two_desks_at_once() -> None:
    small = await open_desk(TradingConfig(starting_balances={"USDT": 1000.0}))
    large = await open_desk(TradingConfig(starting_balances={"USDT": 5000.0}))

    async def on(desk: TradingDesk, buy: bool) -> tuple[str, str]:
        with bind_desk(desk):
            if buy:
                assert (await trading_skills.place_order("BTC/USDT", "buy", 0.001)).startswith("placed")
            await asyncio.sleep(0)  # the other task runs in between
            return await trading_skills.balance(), await trading_skills.positions()

    (bal_small, pos_small), (bal_large, pos_large) = await asyncio.gather(on(small, True), on(large, False))
    assert "BTC free 0.001" in bal_small and pos_small.startswith("BTC/USDT 0.001")
    assert "USDT free 5000" in bal_large and pos_large == "no open positions"
    assert current_bindings() is None
    await small.close()
    await large.close()


async def test_bind_desk_keeps_what_else_is_bound_and_sets_the_mode() -> None:
    desk, loader = await open_desk(TradingConfig()), SkillLoader()
    with bind_skills(SkillBindings(loader=loader)), bind_desk(desk, mode=lambda: "safe"):
        assert default_loader() is loader
        refused = await trading_skills.place_order("BTC/USDT", "buy", 0.001)
    assert refused.startswith("error:") and "safe" in refused, refused
    assert await desk.open_orders() == [] and await desk.intents.list() == []
    assert (await trading_skills.balance()).startswith("error: no trading desk")  # nothing bound now
    await desk.close()


def test_loader_and_market_data_come_from_the_binding() -> None:
    loader, md = SkillLoader(), MarketData()
    process_loader = default_loader()
    with bind_skills(SkillBindings(loader=loader, market_data=md)):
        assert default_loader() is loader and market_data() is md
    assert default_loader() is process_loader and market_data() is not md


def test_an_application_binds_its_own_parts() -> None:
    one, two = Alina(AlinaConfig()), Alina(AlinaConfig())
    with one.bound():
        assert default_loader() is one.skills and market_data() is one.market_data
        with two.bound():
            assert default_loader() is two.skills
        assert default_loader() is one.skills
    assert current_bindings() is None


def test_from_config_applies_overrides(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("team:\n  max_turns: 5\n")
    app = Alina.from_config(path, team__max_turns=3)
    assert app.config.team.max_turns == 3
