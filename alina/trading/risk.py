"""The risk guard: code (not a prompt) that every order passes, paper or live.

Rules, checked in this order on the rounded order and a fresh :class:`AccountView`:

1. kill switch (config ``risk.kill_switch`` or :meth:`RiskGuard.engage`): no new orders;
2. price band: a limit price within ``price_band_pct`` of the last price;
3. max order notional: ``amount x max(last, limit price)``;
4. daily loss limit: once equity is ``daily_loss_limit`` below the day's opening equity, only
   sells (risk-reducing on a spot account) pass;
5. max position per symbol and 6. max total exposure (buys only, see :func:`symbol_exposure`);
7. max open orders (a limit order may rest, so it needs a free slot).

Limits are judged at the prices of the moment: a later price move can carry an existing position
past a limit, and that blocks further buys but does not sell anything.
"""

from __future__ import annotations

from alina.trading.config import RiskConfig
from alina.trading.errors import RiskRejection
from alina.trading.orders import AccountView, OrderRequest

__all__ = ["RiskGuard", "order_value", "symbol_exposure", "total_exposure"]


def _money(x: float) -> str:
    return f"{x:,.2f}"


def order_value(request: OrderRequest, last: float) -> float:
    """Notional the guard charges an order: amount x max(last price, limit price)."""
    return request.amount * max(last, request.price or last)


def symbol_exposure(view: AccountView, symbol: str) -> float:
    """Holding x last price plus every open buy's remaining amount x max(last, its limit)."""
    last = view.last_prices.get(symbol, 0.0)
    held = view.positions.get(symbol, 0.0) * last
    pending = sum(
        o.remaining * max(last, o.price or last)
        for o in view.open_orders
        if o.symbol == symbol and o.side == "buy"
    )
    return held + pending


def total_exposure(view: AccountView) -> float:
    """Sum of :func:`symbol_exposure` over every symbol held or with open orders."""
    symbols = set(view.positions) | {o.symbol for o in view.open_orders}
    return sum(symbol_exposure(view, s) for s in symbols)


class RiskGuard:
    """Checks orders against :class:`RiskConfig`; :meth:`check` raises :class:`RiskRejection`."""

    def __init__(self, limits: RiskConfig) -> None:
        """Use ``limits`` (read on every check, so a config reload takes effect at once)."""
        self.limits = limits
        self._kill_reason: str | None = None

    @property
    def killed(self) -> bool:
        """True while the kill switch is on (config or engaged at run time)."""
        return self.limits.kill_switch or self._kill_reason is not None

    def engage(self, reason: str) -> None:
        """Turn the kill switch on at run time (e.g. from an alert); cancels still work."""
        self._kill_reason = reason or "engaged"

    def release(self) -> None:
        """Turn the run-time kill switch off (the config switch stays as configured)."""
        self._kill_reason = None

    def check(self, request: OrderRequest, view: AccountView) -> None:
        """Accept silently or raise RiskRejection(reason, rule) for the first rule broken."""
        lim = self.limits
        sym = request.symbol
        quote = sym.split("/")[1] if "/" in sym else ""
        if self.killed:
            why = "risk.kill_switch is on" if lim.kill_switch else f"kill switch engaged: {self._kill_reason}"
            raise RiskRejection(f"{why}; no new orders (cancels still work)", "kill_switch")
        last = view.last_prices.get(sym)
        if not last or last <= 0:
            raise RiskRejection(f"no last price for {sym}, so the order cannot be valued", "no_price")
        if request.type == "limit" and request.price is not None:
            off_pct = abs(request.price / last - 1) * 100
            if off_pct > lim.price_band_pct:
                raise RiskRejection(
                    f"limit price {request.price:g} is {off_pct:.2f}% from the last price {last:g}; the band "
                    f"is ±{lim.price_band_pct:g}% (risk.price_band_pct)",
                    "price_band",
                )
        value = order_value(request, last)
        if value > lim.max_order_notional:
            unit = max(last, request.price or last)
            raise RiskRejection(
                f"order value {_money(value)} {quote} exceeds the max order notional "
                f"{_money(lim.max_order_notional)} (risk.max_order_notional); at most "
                f"{lim.max_order_notional / unit:.6g} {sym.split('/')[0]}",
                "max_order_notional",
            )
        if request.side == "buy":
            loss = view.day_start_equity - view.equity
            if loss >= lim.daily_loss_limit:
                raise RiskRejection(
                    f"daily loss {_money(loss)} {quote} reached the limit {_money(lim.daily_loss_limit)} "
                    "(risk.daily_loss_limit); only sells until the next UTC day",
                    "daily_loss_limit",
                )
            pos = symbol_exposure(view, sym) + value
            if pos > lim.max_position_notional:
                raise RiskRejection(
                    f"{sym} position would be {_money(pos)} {quote} (held + open buys + this order), "
                    f"above the max position {_money(lim.max_position_notional)} "
                    "(risk.max_position_notional)",
                    "max_position_notional",
                )
            total = total_exposure(view) + value
            if total > lim.max_total_exposure:
                raise RiskRejection(
                    f"total exposure would be {_money(total)} {quote}, above the max "
                    f"{_money(lim.max_total_exposure)} (risk.max_total_exposure)",
                    "max_total_exposure",
                )
        if request.type == "limit" and len(view.open_orders) + 1 > lim.max_open_orders:
            raise RiskRejection(
                f"{len(view.open_orders)} orders are open, the max is {lim.max_open_orders} "
                "(risk.max_open_orders); cancel one first",
                "max_open_orders",
            )
