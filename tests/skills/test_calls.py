"""Tool calls: timeouts enforced per call, every call recorded with secrets masked."""

from __future__ import annotations

import asyncio
import threading

import pytest
from autogen_core import CancellationToken

from alina.agents import build_tool
from alina.skills.loader import SkillRegistry
from alina.skills.recorder import (
    MASK,
    InMemoryToolCallRecorder,
    ToolCallRecord,
    ToolCallRecorder,
    is_secret_name,
    mask_secrets,
    run_scope,
    summarize_result,
)

from ._helpers import call_tool

release = threading.Event()
cancelled: list[str] = []


def blocking_tool(seconds: float = 3600.0) -> str:
    """Block until released (stands in for a hung network call).

    Args:
        seconds: Upper bound on the wait.
    """
    release.wait(seconds)
    return "released"


async def sleeping_tool(seconds: float = 3600.0) -> str:
    """Sleep asynchronously.

    Args:
        seconds: How long to sleep.
    """
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        cancelled.append("sleeping_tool")
        raise
    return "woke"


def exchange_login(account: str, api_key: str, apiSecret: str = "", max_tokens: int = 5) -> str:
    """Pretend to log in.

    Args:
        account: Account name.
        api_key: The API key.
        apiSecret: The API secret.
        max_tokens: Not a secret despite the name.
    """
    return f"error: login refused for {account}"


def exploding_tool(x: int = 1) -> str:
    """Raise.

    Args:
        x: Anything.
    """
    raise ValueError(f"bad x {x}")


def _skill(func, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
    return SkillRegistry("tests").add(func, agents=["trader"], timeout_s=timeout_s)


def test_sync_call_past_its_timeout_returns_an_error_and_is_recorded_as_timeout() -> None:
    rec = InMemoryToolCallRecorder()
    tool = build_tool(_skill(blocking_tool, timeout_s=0.05), "trader", rec)
    try:
        out = call_tool(tool, {})
    finally:
        release.set()
    assert out == "error: blocking_tool timed out after 0.05s"
    (call,) = rec.calls
    assert (call.tool, call.agent, call.outcome, call.result_summary) == (
        "blocking_tool",
        "trader",
        "timeout",
        out,
    )


def test_async_call_past_its_timeout_is_cancelled() -> None:
    rec = InMemoryToolCallRecorder()
    tool = build_tool(_skill(sleeping_tool, timeout_s=0.05), "trader", rec)
    assert call_tool(tool, {}).endswith("timed out after 0.05s")
    assert cancelled == ["sleeping_tool"]
    assert rec.calls[0].outcome == "timeout"


def test_fast_calls_are_not_affected_by_the_timeout() -> None:
    rec = InMemoryToolCallRecorder()
    tool = build_tool(_skill(sleeping_tool, timeout_s=30), "trader", rec)
    assert call_tool(tool, {"seconds": 0}) == "woke"
    assert rec.calls[0].outcome == "ok" and rec.calls[0].arguments == {"seconds": 0.0}


def test_arguments_are_recorded_with_secrets_masked() -> None:
    rec = InMemoryToolCallRecorder()
    tool = build_tool(_skill(exchange_login), "trader", rec)

    async def go() -> str:
        with run_scope("run-42"):
            return await tool.run_json(
                {"account": "main", "api_key": "sk-live-123", "apiSecret": "s3cr3t"}, CancellationToken()
            )

    out = asyncio.run(go())
    assert out == "error: login refused for main"
    (call,) = rec.calls
    assert call.run_id == "run-42"
    assert call.arguments == {"account": "main", "api_key": MASK, "apiSecret": MASK, "max_tokens": 5}
    assert call.outcome == "error"  # an "error:" answer counts as an error
    assert "sk-live" not in repr(call) and "s3cr3t" not in repr(call)


def test_an_exception_propagates_and_is_recorded() -> None:
    rec = InMemoryToolCallRecorder()
    tool = build_tool(_skill(exploding_tool), "trader", rec)
    with pytest.raises(ValueError, match="bad x 7"):
        call_tool(tool, {"x": 7})
    assert (rec.calls[0].outcome, rec.calls[0].result_summary) == ("error", "ValueError: bad x 7")
    assert rec.calls[0].run_id is None  # outside any run


def test_a_failing_recorder_does_not_break_the_call() -> None:
    class Broken:
        async def record(self, call: ToolCallRecord) -> None:
            raise ConnectionError("database down")

    assert isinstance(Broken(), ToolCallRecorder)
    tool = build_tool(_skill(sleeping_tool), "trader", Broken())
    assert call_tool(tool, {"seconds": 0}) == "woke"


def test_mask_secrets_rules() -> None:
    args = {"symbol": "BTC/USDT", "password": "p", "nested": {"token": "t", "ok": [{"private_key": "k"}]}}
    assert mask_secrets(args) == {
        "symbol": "BTC/USDT",
        "password": MASK,
        "nested": {"token": MASK, "ok": [{"private_key": MASK}]},
    }
    assert args["password"] == "p"  # the input is not modified
    for name in ("API_KEY", "x-api-key", "authToken", "passphrase", "credentials", "apikey"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "keyword", "symbol", "author", "monkey"):
        assert not is_secret_name(name), name


def test_summaries_are_cut() -> None:
    assert summarize_result("x" * 600) == "x" * 497 + "..."
    assert summarize_result({"a": 1}) == "{'a': 1}"
