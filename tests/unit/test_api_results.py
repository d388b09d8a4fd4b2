"""The run report of the Python API: tool calls paired with results, tokens, timings, frame."""

from __future__ import annotations

import json

from alina.api import RunReport
from alina.memory_store.checkpoints import Evaluation, MessageRow
from alina.team import RunResult


def _result() -> RunResult:
    request = json.dumps(
        [{"name": "candle_summary", "arguments": json.dumps({"symbol": "BTC/USDT", "hours": 24})}]
    )
    done = "candle_summary: BTC/USDT 24h: -1.2%"
    events = [
        MessageRow(1, "user", "TextMessage", "What is the BTC/USDT trend?"),
        MessageRow(2, "trader", "ToolCallRequestEvent", request, 120, 14, 900.0),
        MessageRow(3, "trader", "ToolCallExecutionEvent", done, latency_ms=5.0),
        MessageRow(4, "trader", "ToolCallSummaryMessage", "BTC/USDT 24h: -1.2%", None, None, 1.0),
        MessageRow(
            5,
            "alina",
            "TextMessage",
            "BTC/USDT fell 1.2% over the last day.",
            200,
            20,
            1500.0,
            evaluations=(Evaluation("answer_check", "alina", 1.0, True, {"outcome": "passed"}),),
        ),
    ]
    return RunResult(
        run_id="r1",
        task="What is the BTC/USDT trend?",
        status="completed",
        stop_reason="answer",
        turns=2,
        model_calls=2,
        prompt_tokens=320,
        completion_tokens=34,
        wall_s=2.5,
        answer="BTC/USDT fell 1.2% over the last day.",
        answer_check={"outcome": "passed"},
        events=events,
    )


def test_report_reads_the_run() -> None:
    report = RunReport.from_result(_result())
    assert report.ok and report.answer.startswith("BTC/USDT fell")
    assert report.tokens == {"prompt": 320, "completion": 34, "total": 354}
    assert report.timings == {"wall": 2.5, "trader": 0.906, "alina": 1.5}
    [call] = report.tool_calls
    assert (call.agent, call.tool, call.arguments) == (
        "trader",
        "candle_summary",
        {"symbol": "BTC/USDT", "hours": 24},
    )
    assert call.result == "BTC/USDT 24h: -1.2%" and not call.failed
    assert [(s.seq, s.name, s.score) for s in report.scores] == [(5, "answer_check", 1.0)]
    assert "trader [ToolCallRequestEvent]" in report.transcript()
    assert report.to_json()["tokens"]["total"] == 354
    assert report.raw is not None and report.raw.to_json()["run_id"] == "r1"


def test_to_frame_has_a_row_per_message_and_the_scores() -> None:
    frame = RunReport.from_result(_result()).to_frame()
    assert list(frame.index) == [1, 2, 3, 4, 5]
    assert frame.loc[2, "prompt_tokens"] == 120
    assert frame.loc[5, "score_answer_check"] == 1.0


def test_several_calls_in_one_request_get_their_own_results() -> None:
    result = _result()
    request = json.dumps([{"name": "ticker", "arguments": "{}"}, {"name": "balance", "arguments": "{}"}])
    result.events[1:3] = [
        MessageRow(2, "trader", "ToolCallRequestEvent", request),
        MessageRow(
            3, "trader", "ToolCallExecutionEvent", "ticker: BTC/USDT last 1\nticker: more\nbalance: error: x"
        ),
    ]
    calls = RunReport.from_result(result).tool_calls
    assert [(c.tool, c.result) for c in calls] == [
        ("ticker", "BTC/USDT last 1\nticker: more"),
        ("balance", "error: x"),
    ]
    assert calls[1].failed
