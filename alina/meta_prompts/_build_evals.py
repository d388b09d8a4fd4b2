"""Writes the frozen evaluation sets ``alina/meta_prompts/evals/AGENT.jsonl`` (run once, committed).

``python -m alina.meta_prompts._build_evals`` regenerates them. Every report text is produced by
the real tool code on the packaged data: :func:`~alina.skills.builtin.candle_summary` and
:func:`~alina.skills.builtin.get_price` on the bundled BTC/USDT candles,
:func:`~alina.skills.builtin.format_health` + :func:`~alina.skills.builtin.evaluate_health` on
fixed machine figures (the live figures of ``system_health`` differ per machine, so a frozen set
fixes them), and :func:`~alina.skills.builtin.score_text` for the optimizer's rubric. Each case
carries a ``reference`` output that scores 1.0 (the tests hold the set to that), so the set's
expectations are satisfiable.

The split is fixed by position (cases 2, 5, 8 of every ten are held out: 30 %), so adding cases at
the end never moves an existing case between ``tune`` and ``heldout``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from alina.runtime.status import monitor_status_line
from alina.skills.builtin import (
    HealthReport,
    candle_summary,
    evaluate_health,
    format_health,
    get_price,
    score_text,
)

EVALS_DIR = Path(__file__).resolve().parent / "evals"
HELDOUT_POSITIONS = (2, 5, 8)
_PCT = re.compile(r"close ([\d,.]+) \(([-+][\d.]+)%\)")
_OPPOSITE = {
    "uptrend": ["downtrend"],
    "downtrend": ["uptrend"],
    "sideways": ["uptrend", "downtrend"],
    "healthy": ["degraded"],
    "degraded": ["healthy"],
}

# (how the user names the window, hours) — the phrasings task_args reads
WINDOWS: list[tuple[str, float]] = [
    ("the last hour", 1),
    ("the last 2 hours", 2),
    ("the past 3 hours", 3),
    ("the last 4 hours", 4),
    ("the last 6 hours", 6),
    ("the past 8 hours", 8),
    ("the last 12 hours", 12),
    ("the last 24 hours", 24),
    ("the past day", 24),
    ("the last 36 hours", 36),
    ("the past 2 days", 48),
    ("the last 3 days", 72),
    ("the last 4 days", 96),
    ("the past 5 days", 120),
    ("the last week", 168),
    ("the last 30 minutes", 0.5),
    ("the last 18 hours", 18),
    ("the past 10 hours", 10),
    ("the last 48 hours", 48),
    ("the past week", 168),
    ("the last 90 minutes", 1.5),
    ("the last 5 hours", 5),
    ("the last 16 hours", 16),
    ("the past 6 days", 144),
]

# (process cpu %, rss MB, system memory %, load1, p95 of the slowest agent in s)
MACHINES: list[tuple[float, float, float, float, float]] = [
    (12.5, 350, 61, 0.8, 8.1),
    (3.0, 290, 44, 0.3, 4.2),
    (85.2, 910, 93, 1.9, 12.0),
    (40.1, 620, 72, 4.6, 9.5),
    (22.0, 480, 58, 1.1, 35.4),
    (7.7, 300, 88, 1.7, 21.0),
    (64.3, 1200, 95, 5.2, 41.7),
    (15.9, 410, 67, 0.9, 6.6),
    (31.4, 530, 91, 0.5, 3.3),
    (9.9, 330, 52, 3.1, 14.8),
    (50.0, 700, 79, 2.2, 31.2),
    (2.2, 280, 39, 0.1, 2.5),
]


def _split(i: int) -> str:
    return "heldout" if i % 10 in HELDOUT_POSITIONS else "tune"


def _must_not(states: list[str]) -> list[str]:
    return sorted({o for s in states for o in _OPPOSITE.get(s, [])} | {"error:"})


def _trend(summary: str) -> tuple[str, str, str]:
    """(close, signed % change, trend) of a candle_summary text."""
    m, trend = _PCT.search(summary), re.search(r"trend (\w+)", summary)
    if m is None or trend is None:
        raise ValueError(f"not a candle_summary text: {summary!r}")
    return m.group(1), m.group(2), trend.group(1)


def _health(i: int) -> tuple[str, str, str, str]:
    """(report text, verdict, cpu figure, memory figure) of machine ``i``, from the real formatter."""
    cpu, rss, mem, load1, p95 = MACHINES[i % len(MACHINES)]
    latency = {
        "trader": {"p50_s": round(p95 / 2.5, 2), "p95_s": p95, "last_s": round(p95 / 3, 2), "calls": 3 + i}
    }
    verdict, reasons = evaluate_health(mem, load1, 2, latency)
    report = HealthReport(cpu, rss, mem, (load1, load1 * 0.9, load1 * 0.8), 2, latency, verdict, reasons)
    return f"{format_health(report)}\n{monitor_status_line()}", verdict, f"{cpu:.1f}", f"{mem:.0f}"


def trader_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    price = get_price("BTC/USDT")
    price_tasks = [
        "What is the current BTC price?",
        "Give me the last price of BTC/USDT.",
        "How much is bitcoin now?",
        "Quote BTC/USDT.",
        "What's BTC trading at?",
        "Latest bitcoin price please.",
        "Tell me the BTC/USDT price.",
        "Price of BTC right now?",
    ]
    summary_tasks = [
        "How did BTC do over {w}?",
        "Summarise BTC/USDT over {w}.",
        "What's the BTC trend for {w}?",
    ]
    for k, (phrase, hours) in enumerate(WINDOWS):
        text = candle_summary("BTC/USDT", hours)
        close, pct, trend = _trend(text)
        cases.append(
            {
                "task": summary_tasks[k % len(summary_tasks)].format(w=phrase),
                "reports": [{"source": "candle_summary", "content": text}],
                "expect": {
                    "tool": "candle_summary",
                    "args": {"hours": hours},
                    "numbers": [pct],
                    "states": [trend],
                    "must_not": _must_not([trend]),
                },
                "reference": {
                    "tool": "candle_summary",
                    "args": {"symbol": "BTC/USDT", "hours": hours},
                    "text": text,
                },
            }
        )
    for task in price_tasks:
        cases.append(
            {
                "task": task,
                "reports": [{"source": "get_price", "content": price}],
                "expect": {
                    "tool": "get_price",
                    "args": {"symbol": "BTC/USDT"},
                    "numbers": ["21,925.7"],
                    "states": [],
                    "must_not": ["error:"],
                },
                "reference": {"tool": "get_price", "args": {"symbol": "BTC/USDT"}, "text": price},
            }
        )
    return _interleave(cases)


def monitor_cases() -> list[dict[str, Any]]:
    tasks = [
        "Is the system healthy?",
        "How are CPU and memory doing?",
        "Check the machine's health.",
        "Any problems with the system right now?",
        "Report memory use and load.",
        "Is the model server slow?",
        "Give me a health check.",
        "How loaded is the box?",
        "Status of the system, please.",
        "Are we degraded?",
    ]
    cases = []
    for i in range(30):
        text, verdict, cpu, mem = _health(i)
        cases.append(
            {
                "task": tasks[i % len(tasks)],
                "reports": [{"source": "system_health", "content": text}],
                "expect": {
                    "tool": "system_health",
                    "args": {},
                    "numbers": [cpu, mem],
                    "states": [verdict],
                    "must_not": _must_not([verdict]),
                },
                "reference": {"tool": "system_health", "args": {}, "text": text},
            }
        )
    return cases


# (text to score, whose text: request | trader | monitor) — good and bad answers alike
_SCORED = [
    ("BTC/USDT fell 3.28% over the last 6 hours, a downtrend.", "trader"),
    ("I cannot help with that.", "request"),
    ("The system is healthy: memory 61% used, cpu 12.5%.", "monitor"),
    ("BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC BTC", "request"),
    ("", "request"),
    ("Bitcoin closed at 21,925.7, down 4.25% over 24 hours.", "trader"),
    ("As an AI language model I am unable to provide financial data.", "trader"),
    ("degraded: memory 93% used, load 1.90", "monitor"),
    ("<|im_end|> The price is", "request"),
    ("Paris is the capital of France.", "request"),
]


def optimizer_cases() -> list[dict[str, Any]]:
    asks = {
        "request": [
            "Score this answer: {t}",
            "Rate this reply from 0 to 1: {t}",
            "How good is this answer: {t}",
        ],
        "trader": [
            "Score the trader's report.",
            "Rate what the trader said.",
            "How good was the trader's answer?",
        ],
        "monitor": [
            "Score the monitor's report.",
            "Rate the monitor's answer.",
            "How good is the health report?",
        ],
    }
    cases = []
    for i in range(30):
        text, of = _SCORED[i % len(_SCORED)]
        task = asks[of][(i // len(_SCORED)) % 3].format(t=text)
        if of == "request":
            material = task.partition(":")[2].strip() or task
            out = "the request's text: " + score_text(material, task)
        else:
            out = f"{of}'s report: " + score_text(text, task)
        score = re.search(r"score (\d\.\d\d)", out)
        if score is None:
            raise ValueError(f"score_text gave no score: {out!r}")
        reports = [{"source": "score_answer", "content": out}]
        if of != "request":
            reports.insert(0, {"source": of, "content": text})
        cases.append(
            {
                "task": task,
                "reports": reports,
                "expect": {
                    "tool": "score_answer",
                    "args": {"of": of},
                    "numbers": [score.group(1)],
                    "states": [],
                    "must_not": ["error:"],
                },
                "reference": {"tool": "score_answer", "args": {"of": of}, "text": out},
            }
        )
    return cases


def alina_cases() -> list[dict[str, Any]]:
    cases = []
    for i in range(40):
        phrase, hours = WINDOWS[i % len(WINDOWS)]
        trend_text = candle_summary("BTC/USDT", hours)
        close, pct, trend = _trend(trend_text)
        health_text, verdict, cpu, mem = _health(i)
        kind = i % 4  # 0: trend only, 1: health only, 2: both, 3: price + trend
        word = {"uptrend": "rose", "downtrend": "fell", "sideways": "moved sideways"}[trend]
        trend_answer = f"BTC/USDT {word} {pct.lstrip('+-')}% over {phrase} to {close} ({trend})."
        health_answer = f"The system is {verdict}: memory {mem}% used, process cpu {cpu}%."
        if kind == 0:
            task, reports = f"How did BTC do over {phrase}?", [("trader", trend_text)]
            numbers, states, ref = [pct], [trend], trend_answer
        elif kind == 1:
            task, reports = "Is the system healthy?", [("monitor", health_text)]
            numbers, states, ref = [mem], [verdict], health_answer
        elif kind == 2:
            task = f"What is the BTC trend over {phrase}, and is the system healthy?"
            reports = [("trader", trend_text), ("monitor", health_text)]
            numbers, states, ref = [pct], [trend, verdict], f"{trend_answer} {health_answer}"
        else:
            price = get_price("BTC/USDT")
            task = f"What is BTC's price and its trend over {phrase}?"
            reports = [("trader", price), ("trader", trend_text)]
            numbers, states, ref = (
                ["21,925.7", pct],
                [trend],
                f"BTC/USDT last price is 21,925.7. {trend_answer}",
            )
        cases.append(
            {
                "task": task,
                "reports": [{"source": s, "content": c} for s, c in reports],
                "expect": {"numbers": numbers, "states": states, "must_not": _must_not(states)},
                "reference": ref,
            }
        )
    return cases


def _interleave(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spread the second kind of case through the first, so both reach the held-out split."""
    head, tail = cases[: len(WINDOWS)], cases[len(WINDOWS) :]
    out: list[dict[str, Any]] = []
    step = max(1, len(head) // max(1, len(tail)))
    for i, case in enumerate(head):
        out.append(case)
        if tail and i % step == step - 1:
            out.append(tail.pop(0))
    return out + tail


BUILDERS = {
    "alina": alina_cases,
    "trader": trader_cases,
    "monitor": monitor_cases,
    "optimizer": optimizer_cases,
}


def build(out_dir: Path = EVALS_DIR) -> dict[str, int]:
    """Write every agent's set; returns the number of cases per agent."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for agent, builder in BUILDERS.items():
        cases = builder()
        lines = [
            json.dumps({"id": f"{agent}-{i:03d}", "split": _split(i), **case}, ensure_ascii=False)
            for i, case in enumerate(cases)
        ]
        (out_dir / f"{agent}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[agent] = len(cases)
    return counts


if __name__ == "__main__":
    print(build())
