"""TradingConfig: defaults, extra="forbid", and cross-field problems as `path: what (got X)`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from alina.trading.config import TradingConfig


def test_defaults_are_paper_and_valid() -> None:
    cfg = TradingConfig()
    assert cfg.mode == "paper" and cfg.price_source == "replay"
    assert cfg.cross_field_problems() == []


def test_unknown_keys_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        TradingConfig.model_validate({"api_key": "abc"})
    with pytest.raises(ValidationError):
        TradingConfig.model_validate({"mode": "yolo"})
    with pytest.raises(ValidationError):
        TradingConfig.model_validate({"risk": {"max_order_notional": -1}})


def test_cross_field_problems_name_the_path_and_value() -> None:
    cfg = TradingConfig.model_validate(
        {
            "exchange": "nosuchexchange",
            "markets_file": "missing.json",
            "api_key_env": "sk-live-0123456789abcdef0123",  # a key pasted where a NAME belongs
            "starting_balances": {"USDT": 0, "BTC": -1},
            "slippage": {"base_bps": 20, "max_bps": 10},
            "risk": {"max_order_notional": 9000, "max_total_exposure": 5000},
        }
    )
    problems = cfg.cross_field_problems()
    text = "\n".join(problems)
    assert "trading.exchange: not a ccxt exchange id (got 'nosuchexchange')" in problems
    assert any(p.startswith("trading.markets_file: file not found") for p in problems)
    assert (
        "trading.api_key_env: must name an environment variable (A-Z, 0-9, _; e.g. OPENAI_API_KEY), not hold "
        "the key itself; put the key in that variable (value hidden)"
    ) in problems
    assert "0123456789abcdef" not in text  # the pasted key is never echoed
    assert any(p.startswith("trading.starting_balances: needs a positive USDT balance") for p in problems)
    assert any(p.startswith("trading.starting_balances: balances cannot be negative") for p in problems)
    assert "trading.slippage.base_bps: larger than slippage.max_bps 10 (got 20)" in problems
    assert any(p.startswith("trading.risk.max_order_notional:") and "(got 9000)" in p for p in problems)
    assert all(": " in p and ("(got " in p or "(value hidden)" in p) for p in problems)


def test_same_env_name_for_key_and_secret() -> None:
    cfg = TradingConfig(api_key_env="X_KEY", secret_env="X_KEY")
    assert cfg.cross_field_problems(prefix="t") == [
        "t.secret_env: must differ from api_key_env (got 'X_KEY')"
    ]


def test_repr_holds_names_not_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALINA_EXCHANGE_API_KEY", "PLANTED-KEY-zzz")
    cfg = TradingConfig(mode="live")
    assert "PLANTED" not in repr(cfg) and "PLANTED" not in str(cfg) and "PLANTED" not in cfg.model_dump_json()
