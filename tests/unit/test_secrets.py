"""The secret rules (alina._secrets) and the config errors that must never quote a secret."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from alina._secrets import (
    _KEY_MIN,
    _KEYS,
    MASK,
    env_name_problem,
    install_log_redaction,
    is_secret_name,
    looks_like_secret,
    mask_secrets,
    redact_text,
)
from alina.config import ConfigError, load_config

KEYS = [
    "sk-proj-Zq8RkT2mWp4XvL9n",
    "sk-abc123",  # short, still key-shaped
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "xoxb-2634512-98765abcdef",
    "AKIAIOSFODNN7EXAMPLE",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
    "hf_AbCdEfGhIjKlMnOpQrStUvWxYz",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "Zq8RkT2mWp4XvL9nB7cY3hJ6dF1gS5aQ",  # a bare random 32-character token (Binance style)
]
NOT_KEYS = [
    "3f2a9c1e4b5d6a7f8e9d0c1b2a3f4e5d",  # run id (hex)
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",  # sha256 digest
    "/work/alina/trading/data/Binance_BTCUSDT_5m.feather",
    "ToolCallSummaryMessage",
    "ALINA_EXCHANGE_API_KEY",
    "BTC/USDT fell 4.25% over the last day (downtrend)",
    "task-abcdefgh risk-12345678",
    "max_tokens=256 keyword=trend",
]


# -- names and shapes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "X-MBX-APIKEY",
        "db_password",
        "access_token",
        "secret",
        "passphrase",
        "Authorization",
        "private_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_tokens",
        "keyword",
        "author",
        "monkey",
        "symbol",
        "api_key_env",
        "password_env",
        "secret_env",
        "key_file",
        "token_id",
    ],
)
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize("key", KEYS)
def test_key_shaped_values_are_recognised_and_redacted(key: str) -> None:
    assert looks_like_secret(key)
    assert redact_text(key) == MASK
    assert redact_text(f"error: {key} was refused") == f"error: {MASK} was refused"


@pytest.mark.parametrize("text", NOT_KEYS)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert not looks_like_secret(text)
    assert redact_text(text) == text


def test_redact_text_masks_pairs_urls_and_bearer_tokens() -> None:
    cases = {
        "GET https://api.x.com/v3/account?timestamp=1&signature=0a1b2c&apiKey=short1": (
            "GET https://api.x.com/v3/account?timestamp=1&signature=***&apiKey=***"
        ),
        "X-MBX-APIKEY: abcdef and password=hunter2": "X-MBX-APIKEY: *** and password=***",
        "postgresql://alina:hunter2@db:5432/alina": "postgresql://alina:***@db:5432/alina",
        "Authorization: Bearer abc.def.ghi": "Authorization: *** ***",
        "{'api_key': 'hunter2', 'symbol': 'BTC/USDT'}": "{'api_key': '***', 'symbol': 'BTC/USDT'}",
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- ok": "*** ok",
    }
    for text, expected in cases.items():
        assert redact_text(text) == expected, text
        assert redact_text(expected) == expected  # idempotent


def test_redacted_json_stays_json_at_two_levels_of_quoting() -> None:
    obj = {"args": {"api_key": "hunter2", "pin": 1234, "note": "use sk-abcdefgh1"}, "token": {"a": 1}}
    once = json.loads(redact_text(json.dumps(obj)))
    assert once["args"] == {"api_key": MASK, "pin": 1234, "note": f"use {MASK}"}
    nested = json.dumps({"arguments": json.dumps({"password": 12, "api_key": "hunter2"})})
    inner = json.loads(json.loads(redact_text(nested))["arguments"])
    assert inner == {"password": MASK, "api_key": MASK}


def test_mask_secrets_masks_names_and_shapes_at_any_depth() -> None:
    args = {"symbol": "BTC/USDT", "api_key": "x", "note": ["see sk-abcdefgh1"], "deep": {"token": {"a": 1}}}
    assert mask_secrets(args) == {
        "symbol": "BTC/USDT",
        "api_key": MASK,
        "note": [f"see {MASK}"],
        "deep": {"token": MASK},
    }
    assert args["api_key"] == "x"


def test_mask_secrets_treats_subclasses_and_other_mappings_like_dicts_and_strings() -> None:
    class Text(str):
        pass

    class Record(dict):  # type: ignore[type-arg]
        pass

    args = {
        "view": MappingProxyType({"password": "hunter2"}),
        "record": Record(token="t", note=Text("use sk-abcdefgh1")),
        "pair": ("sk-abcdefgh1", 2),
    }
    assert mask_secrets(args) == {
        "view": {"password": MASK},
        "record": {"token": MASK, "note": f"use {MASK}"},
        "pair": [MASK, 2],
    }


def test_the_key_scan_is_skipped_only_for_texts_shorter_than_every_key_shape() -> None:
    # redact_text does not scan texts shorter than _KEY_MIN for key shapes: none is that short.
    assert re._parser.parse(_KEYS.pattern).getwidth()[0] == _KEY_MIN  # type: ignore[attr-defined]
    assert redact_text("sk-abcdef") == MASK and redact_text("sk-abcde") == "sk-abcde"


# -- *_env names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "ALINA_POSTGRES_PASSWORD", "_X", "K2"])
def test_conventional_env_names_are_accepted(name: str) -> None:
    assert env_name_problem(name) is None


@pytest.mark.parametrize(
    "value",
    [
        "sk-abc123",
        "hunter2",
        "lower_case",
        "2ABC",
        "A-B",
        "AKIAIOSFODNN7EXAMPLE",
        "KEY_Zq8RkT2mWp4XvL9nB7cY3h",
        "",
    ],
)
def test_env_names_that_are_keys_or_unconventional_are_refused_without_echo(value: str) -> None:
    problem = env_name_problem(value)
    assert problem is not None and "must name an environment variable" in problem
    assert not value or value not in problem


# -- config errors -------------------------------------------------------------------------------
def _problems(tmp_path: Path, data: object, environ: dict[str, str] | None = None) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(p, environ=environ or {})
    return str(err.value) + "\n" + "\n".join(err.value.problems)


@pytest.mark.parametrize("secret", ["hunter2", "sk-abc123", "sk-proj-Zq8RkT2mWp4XvL9nB7cY3hJ6dF1gS5aQ"])
def test_a_secret_under_a_wrong_config_name_is_never_quoted(tmp_path: Path, secret: str) -> None:
    for field in ("api_key", "apiKey", "pasword", "note"):  # secret names, a typo, an innocent name
        text = _problems(tmp_path, {"models": {"embedded": {field: secret}}})
        assert f"models.embedded.{field}: unknown field" in text and "(got ***)" in text
        assert secret not in text


@pytest.mark.parametrize("secret", ["sk-abc123", "sk-proj-Zq8RkT2mWp4XvL9nB7cY3hJ6dF1gS5aQ", KEYS[-1]])
def test_a_key_shaped_value_is_never_quoted_whatever_the_field(tmp_path: Path, secret: str) -> None:
    structure = _problems(tmp_path, {"models": {"embedded": {"n_ctx": secret}}})  # pydantic's errors
    cross_field = _problems(tmp_path, {"agents": {"alina": {"model": secret}}})  # the cross-field rules
    assert "models.embedded.n_ctx: Input should be a valid integer" in structure
    assert "agents.alina.model: no model of that name" in cross_field
    for text in (structure, cross_field):
        assert secret not in text and "***" in text


def test_a_secret_value_under_a_secret_name_nested_in_a_bad_value_is_masked(tmp_path: Path) -> None:
    text = _problems(tmp_path, {"models": [{"api_key": "hunter2", "model": "m"}]})
    assert "models:" in text and "hunter2" not in text


def test_env_overrides_with_secret_values_are_never_quoted(tmp_path: Path) -> None:
    environ = {
        "ALINA__MODELS__EMBEDDED__API_KEY": "hunter2",
        "ALINA__POSTGRES__PASSWORD": "sk-abc123",
        "ALINA__TEAM__MAX_TURNS__X": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    }
    text = _problems(tmp_path, {}, environ)
    assert "models.embedded.api_key: unknown field" in text and "postgres.password: unknown field" in text
    for value in environ.values():
        assert value not in text


@pytest.mark.parametrize(
    "field", ["models.r.api_key_env", "postgres.password_env", "trading.api_key_env", "trading.secret_env"]
)
@pytest.mark.parametrize("value", ["hunter2", "sk-abc123", "AKIAIOSFODNN7EXAMPLE"])
def test_env_fields_refuse_keys_and_odd_names_without_echo(tmp_path: Path, field: str, value: str) -> None:
    data: dict = {"models": {"r": {"provider": "openai", "base_url": "http://x/v1"}}}
    node = data
    *heads, last = field.split(".")
    for h in heads:
        node = node.setdefault(h, {})
    node[last] = value
    text = _problems(tmp_path, data)
    assert f"{field}: must name an environment variable" in text and "(value hidden)" in text
    assert value not in text


def test_a_conventional_env_name_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"postgres": {"password_env": "PGPASS_2"}}))
    assert load_config(p, environ={}).postgres.password_env == "PGPASS_2"


# -- logs ------------------------------------------------------------------------------------------
def test_log_records_are_redacted_for_every_logger(caplog: pytest.LogCaptureFixture) -> None:
    install_log_redaction()
    caplog.set_level(logging.INFO)
    logging.getLogger("alina.some.module").warning("login with apiKey=%s failed", "hunter2")
    logging.getLogger("ccxt.base").info("GET %s", "https://x/y?signature=abc123&k=sk-abc123")
    try:
        raise ValueError("token: sk-abc123")
    except ValueError:
        logging.getLogger("alina").exception("boom")
    assert "hunter2" not in caplog.text and "sk-abc123" not in caplog.text and "abc123" not in caplog.text
    assert "apiKey=***" in caplog.text and "signature=***" in caplog.text


# -- the boundaries toward the stores ----------------------------------------------------------
def test_stored_message_text_masks_tool_arguments_and_key_shaped_results() -> None:
    from autogen_agentchat.messages import (
        MemoryQueryEvent,
        TextMessage,
        ToolCallExecutionEvent,
        ToolCallRequestEvent,
    )
    from autogen_core import FunctionCall
    from autogen_core.memory import MemoryContent
    from autogen_core.models import FunctionExecutionResult

    from alina.team._turns import _content

    args = json.dumps({"symbol": "BTC/USDT", "api_key": "hunter2", "note": "use sk-abc123"})
    request = ToolCallRequestEvent(
        source="trader", content=[FunctionCall(id="1", name="login", arguments=args)]
    )
    stored = json.loads(_content(request))
    assert stored[0]["name"] == "login"
    assert json.loads(stored[0]["arguments"]) == {
        "symbol": "BTC/USDT",
        "api_key": MASK,
        "note": f"use {MASK}",
    }
    plain = FunctionCall(id="2", name="ticker", arguments='{"symbol": "BTC/USDT"}')
    assert (
        json.loads(_content(ToolCallRequestEvent(source="t", content=[plain])))[0]["arguments"]
        == plain.arguments
    )
    result = FunctionExecutionResult(
        content="session xoxb-123456789-abc", name="login", call_id="1", is_error=False
    )
    assert _content(ToolCallExecutionEvent(source="trader", content=[result])) == f"login: session {MASK}"
    assert _content(TextMessage(source="alina", content="done with sk-abc123")) == f"done with {MASK}"
    memory = MemoryContent(content="key sk-abc123", mime_type="text/plain", metadata={"kind": "lesson"})
    recalled = MemoryQueryEvent(source="alina", content=[memory])
    assert _content(recalled) == f"[lesson] key {MASK}"


def test_hot_rows_and_event_payloads_are_masked() -> None:
    from alina.memory_store.checkpoints import MessageRow
    from alina.memory_store.hot import RECENT_CHARS, _hot_row
    from alina.memory_store.writer import _event

    row = json.loads(
        _hot_row(MessageRow(1, "trader", "TextMessage", "x" * (RECENT_CHARS - 5) + " sk-abc123"))
    )
    assert "sk-a" not in row["content"] and row["content"].endswith(" ***")  # redacted before the cut
    event = json.loads(
        _event("login", {"api_key": "hunter2", "url": "https://x/?token=abc", "n": 1}, None).payload
    )
    assert event == {"api_key": MASK, "url": "https://x/?token=***", "n": 1}


def test_exchange_error_texts_lose_held_and_foreign_keys() -> None:
    from alina.trading.errors import ExchangeUnavailable, OrderRejected
    from alina.trading.exchange import _Secrets

    text = (
        "binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=9f8e7d&apiKey=abc "
        "held-key-value key AKIAIOSFODNN7EXAMPLE"
    )
    safe = _Secrets("held-key-value").redact(text)
    assert "held-key-value" not in safe and "AKIAIOSFODNN7EXAMPLE" not in safe
    assert "signature=***&apiKey=***" in safe
    # Whoever raises a trading error, its text is redacted (the desk and paper raise them too).
    assert "apiKey=***" in str(ExchangeUnavailable("GET /x?apiKey=abc"))
    assert OrderRejected("refused: token=abc").reason == "refused: token=***"
