"""Trading exceptions, named by who must act.

* :class:`OrderRejected` - the caller (agent): the order breaks a market rule (precision,
  limits) or the account cannot pay.
* :class:`RiskRejection` - the caller (agent): the risk guard refused it; ``reason`` says which
  limit and by how much.
* :class:`LiveTradingRefused` - the operator: live trading was asked for without all three opt-ins.
* :class:`ExchangeUnavailable` - retry later: the exchange (or its data) could not be reached.
* :class:`OrderOutcomeUnknown` - nobody may retry blindly: the order may or may not exist;
  it is reconciled by client order id.
* :class:`UnresolvedIntents` - wait for reconciliation: earlier orders' outcomes are unknown,
  so new orders wait.
"""

from __future__ import annotations

from alina._secrets import redact_text

__all__ = [
    "DuplicateClientOrderId",
    "ExchangeUnavailable",
    "LiveTradingRefused",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "RiskRejection",
    "TradingError",
    "UnresolvedIntents",
]


class TradingError(Exception):
    """Base class of every trading error; ``str()`` is safe to show an agent or a log: text
    arguments are redacted here (:func:`~alina._secrets.redact_text`), whoever raised it, so an
    exchange message carrying a key (``apiKey=...`` in a URL, a key-shaped token) loses it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact_text(a) if isinstance(a, str) else a for a in args))


class OrderRejected(TradingError):
    """The order is invalid for the market or the account (the caller must change it)."""

    def __init__(self, reason: str) -> None:
        self.reason = redact_text(reason)
        super().__init__(self.reason)


class DuplicateClientOrderId(OrderRejected):
    """The exchange already has an order with this client order id (it was placed before)."""


class RiskRejection(TradingError):
    """The risk guard refused the order. ``rule`` names the limit; ``reason`` is for the agent."""

    def __init__(self, reason: str, rule: str = "risk") -> None:
        self.reason = redact_text(reason)
        self.rule = rule
        super().__init__(reason)


class LiveTradingRefused(TradingError):
    """Live trading needs config ``mode: live``, the API keys in the environment and ``--live``.

    ``missing`` lists exactly which of the three is absent (the operator must supply them).
    """

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            "live trading refused; missing: "
            + "; ".join(self.missing)
            + ". Nothing was sent to the exchange."
        )


class ExchangeUnavailable(TradingError):
    """The exchange or its market data could not be reached; retry later."""


class OrderOutcomeUnknown(TradingError):
    """The order may have reached the exchange but no reply came back.

    It is NOT retried; the intent stays open until reconciliation by ``client_order_id``.
    """

    def __init__(self, client_order_id: str, detail: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(
            f"order {client_order_id}: outcome unknown ({detail}); not retried, will be reconciled by "
            "client order id"
        )


class UnresolvedIntents(TradingError):
    """New orders wait because earlier intents could not be reconciled yet."""

    def __init__(self, client_order_ids: list[str]) -> None:
        self.client_order_ids = list(client_order_ids)
        super().__init__(
            f"{len(self.client_order_ids)} earlier order(s) have an unknown outcome "
            f"({', '.join(self.client_order_ids[:3])}); no new orders until they are reconciled"
        )
