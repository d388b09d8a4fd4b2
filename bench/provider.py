"""Embedded provider (LlamaCppClient) against raw llama-cpp-python: prefill and decode tok/s.

Both sides load the same GGUF with the same n_ctx, n_threads and seed, and get the same
messages and sampling parameters (temperature 0, repeat_penalty 1.0, seed 42). Runs are
interleaved (the order flips every repetition) so CPU drift and neighbours' load hit both.

* prefill: a long market report (~800 tokens) in the system message, max_tokens=1;
  tok/s = prompt_tokens / elapsed.
* decode: a short prompt that reliably runs to the limit; the same prompt is called with
  max_tokens=1 and max_tokens=128, tok/s = (tokens_128 - tokens_1) / (time_128 - time_1).
  A repetition where either side stops before 128 tokens is dropped (the provider cannot ban
  end-of-sequence: it passes no logit_bias).

Before every call the Llama of that side is ``reset()`` (no KV-cache prefix reuse across calls)
and every repetition's prompts start with a different seeded session id, so no call can reuse
an earlier call's prompt — the same treatment on both sides.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from bench._harness import Goal, Result, median, progress, ratio, stopwatch

SEED = 42
N_CTX = 4096
DECODE_TOKENS = 128
TARGET_RATIO = 0.95

SYSTEM_PREFIX = "Session {sid}. You are a market analyst. Read the report and answer briefly."
DECODE_SYSTEM = "Session {sid}. You are a helpful assistant."
DECODE_USER = "Write the numbers from 1 to 300 in words, separated by commas."
PREFILL_USER = "Summarise the report in one sentence."

_ASSETS = [
    ("BTC/USDT", "Bitcoin"),
    ("ETH/USDT", "Ether"),
    ("SOL/USDT", "Solana"),
    ("BNB/USDT", "BNB"),
    ("XRP/USDT", "XRP"),
    ("ADA/USDT", "Cardano"),
    ("AVAX/USDT", "Avalanche"),
    ("DOT/USDT", "Polkadot"),
    ("LINK/USDT", "Chainlink"),
    ("MATIC/USDT", "Polygon"),
    ("LTC/USDT", "Litecoin"),
    ("ATOM/USDT", "Cosmos"),
]
REPORT_ASSETS = 7  # about 850 tokens of report


def market_report() -> str:
    """A fixed (seeded) daily market report of about 800 tokens."""
    rng = random.Random(SEED)
    parts = [
        "Daily market report. Overall conditions: liquidity was moderate, funding rates stayed "
        "close to neutral and volatility compressed into the close. Macro data came in line "
        "with expectations; the dollar index drifted lower while yields were flat."
    ]
    for symbol, name in _ASSETS[:REPORT_ASSETS]:
        price = rng.uniform(0.5, 60000)
        change = rng.uniform(-6, 6)
        volume = rng.uniform(20, 900)
        rsi = rng.uniform(25, 75)
        support, resistance = price * rng.uniform(0.9, 0.98), price * rng.uniform(1.02, 1.1)
        trend = "an uptrend" if change > 0 else "a downtrend"
        parts.append(
            f"{name} ({symbol}) closed at {price:,.2f}, {change:+.2f}% on the day, on a volume of "
            f"{volume:.0f} million. The 14-day RSI stands at {rsi:.1f}; price is in {trend} with "
            f"support near {support:,.2f} and resistance near {resistance:,.2f}. Order books were "
            f"{'bid' if rng.random() > 0.5 else 'offer'}-heavy and open interest "
            f"{'rose' if rng.random() > 0.5 else 'fell'} by {rng.uniform(0.5, 8):.1f}%."
        )
    parts.append(
        "Outlook: the desk keeps a neutral stance, sizes positions at half the usual risk and "
        "waits for a break of the ranges above before adding exposure."
    )
    return "\n\n".join(parts)


def _session_ids(reps: int) -> list[str]:
    rng = random.Random(SEED)
    return [f"{rng.getrandbits(32):08x}" for _ in range(reps + 1)]  # [0] is the warm-up


def _prefill_messages(sid: str, report: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PREFIX.format(sid=sid) + "\n\n" + report},
        {"role": "user", "content": PREFILL_USER},
    ]


def _decode_messages(sid: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": DECODE_SYSTEM.format(sid=sid)},
        {"role": "user", "content": DECODE_USER},
    ]


class _Raw:
    """The anchor: a plain ``llama_cpp.Llama`` called directly."""

    label = "raw"

    def __init__(self, path: str, n_threads: int) -> None:
        from llama_cpp import Llama

        self.llama = Llama(model_path=path, n_ctx=N_CTX, n_threads=n_threads, seed=SEED, verbose=False)

    async def call(self, chat: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        self.llama.reset()
        with stopwatch() as sw:
            r: Any = self.llama.create_chat_completion(
                messages=chat,  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.0,
                seed=SEED,
                repeat_penalty=1.0,
            )
        usage = r["usage"]
        return {
            "s": sw.elapsed,
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "text": (r["choices"][0]["message"].get("content") or "").strip(),
        }


class _Provider:
    """The provider under test: ``LlamaCppClient.create`` with AutoGen messages."""

    label = "provider"

    def __init__(self, path: str, n_threads: int) -> None:
        from alina.models.llamacpp import LlamaCppClient

        self.client = LlamaCppClient(
            model="smollm2",
            model_path=path,
            n_ctx=N_CTX,
            n_threads=n_threads,
            max_tokens=DECODE_TOKENS,
            temperature=0.0,
            timeout_s=120,
            repeat_penalty=1.0,
            seed=SEED,
        )

    async def call(self, chat: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        from autogen_core.models import LLMMessage, SystemMessage, UserMessage

        messages: list[LLMMessage] = [
            SystemMessage(content=chat[0]["content"]),
            UserMessage(content=chat[1]["content"], source="user"),
        ]
        self.client.llama.reset()  # safe: no call of this client is in flight
        with stopwatch() as sw:
            r = await self.client.create(messages, extra_create_args={"max_tokens": max_tokens})
        return {
            "s": sw.elapsed,
            "prompt_tokens": r.usage.prompt_tokens,
            "completion_tokens": r.usage.completion_tokens,
            "text": r.content if isinstance(r.content, str) else "",
        }


async def _measure(sides: list[Any], reps: int, report: str) -> list[dict[str, Any]]:
    sids = _session_ids(reps)
    progress("warm-up: one prefill and one decode call per side")
    for side in sides:
        await side.call(_prefill_messages(sids[0], report), 1)
        await side.call(_decode_messages(sids[0]), DECODE_TOKENS)
    rows: list[dict[str, Any]] = []
    for rep in range(reps):
        sid = sids[rep + 1]
        order = sides if rep % 2 == 0 else sides[::-1]  # AB, BA, AB, ... cancels linear drift
        row: dict[str, Any] = {"rep": rep, "session_id": sid, "order": [s.label for s in order]}
        for side in order:
            p = await side.call(_prefill_messages(sid, report), 1)
            row[side.label] = {"prefill": _drop_text(p), "prefill_tps": p["prompt_tokens"] / p["s"]}
        for side in order:
            one = await side.call(_decode_messages(sid), 1)
            full = await side.call(_decode_messages(sid), DECODE_TOKENS)
            tokens = full["completion_tokens"] - one["completion_tokens"]
            ok = full["completion_tokens"] == DECODE_TOKENS and full["s"] > one["s"]
            row[side.label].update(
                {
                    "decode_1": _drop_text(one),
                    "decode_n": _drop_text(full),
                    "decode_ok": ok,
                    "decode_tps": tokens / (full["s"] - one["s"]) if ok else None,
                    "decode_text": full["text"],
                }
            )
        row["same_decode_text"] = row["provider"]["decode_text"] == row["raw"]["decode_text"]
        row["same_prompt_tokens"] = (
            row["provider"]["prefill"]["prompt_tokens"] == row["raw"]["prefill"]["prompt_tokens"]
        )
        rows.append(row)
        progress(
            f"rep {rep + 1}/{reps}: prefill tok/s provider {row['provider']['prefill_tps']:.0f} "
            f"raw {row['raw']['prefill_tps']:.0f}; decode tok/s provider "
            f"{_f(row['provider']['decode_tps'])} raw {_f(row['raw']['decode_tps'])}"
        )
    return rows


def _drop_text(call: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in call.items() if k != "text"}


def _f(v: float | None) -> str:
    return "dropped" if v is None else f"{v:.1f}"


def run(reps: int, quick: bool) -> Result:
    from alina.models._guard import allow_model_requests
    from alina.models.llamacpp import default_gguf_path

    n_threads = os.cpu_count() or 1
    path = str(default_gguf_path())
    report = market_report()
    progress(f"loading {path} twice (provider and raw), n_threads={n_threads}")
    provider, raw = _Provider(path, n_threads), _Raw(path, n_threads)
    report_tokens = len(raw.llama.tokenize(report.encode("utf-8"), add_bos=False))
    progress(f"report: {report_tokens} tokens")
    with allow_model_requests(True):
        rows = asyncio.run(_measure([provider, raw], reps, report))

    # A decode repetition counts only when both sides ran to DECODE_TOKENS.
    decode_rows = [r for r in rows if r["provider"]["decode_ok"] and r["raw"]["decode_ok"]]
    prompt_tokens = rows[0]["raw"]["prefill"]["prompt_tokens"] if rows else 0
    figures: list[tuple[str, str, Any, list[dict[str, Any]]]] = [  # label, key, value of a side
        ("prefill tok/s", "prefill_tps", lambda s: s["prefill_tps"], rows),
        ("decode tok/s", "decode_tps", lambda s: s["decode_tps"], decode_rows),
        (
            f"prefill call latency s ({prompt_tokens} prompt tok, 1 out)",
            "prefill_call_s",
            lambda s: s["prefill"]["s"],
            rows,
        ),
        (
            f"decode call latency s (short prompt, {DECODE_TOKENS} out)",
            "decode_call_s",
            lambda s: s["decode_n"]["s"],
            rows,
        ),
        (
            "short call latency s (short prompt, 1 out)",
            "one_token_call_s",
            lambda s: s["decode_1"]["s"],
            rows,
        ),
    ]
    fig: dict[str, dict[str, float]] = {"provider": {}, "raw": {}, "ratio": {}, "paired_ratio": {}}
    table = []
    for label, key, value, subset in figures:
        p_med = median([value(r["provider"]) for r in subset])
        r_med = median([value(r["raw"]) for r in subset])
        paired = median([ratio(value(r["provider"]), value(r["raw"])) for r in subset])
        fig["provider"][key], fig["raw"][key] = p_med, r_med
        fig["ratio"][key], fig["paired_ratio"][key] = ratio(p_med, r_med), paired
        table.append([label, p_med, r_med, ratio(p_med, r_med), paired])
    prefill_ratio, decode_ratio = fig["ratio"]["prefill_tps"], fig["ratio"]["decode_tps"]

    notes = [
        f"{len(decode_rows)}/{len(rows)} decode repetitions kept (both sides reached "
        f"{DECODE_TOKENS} tokens).",
        f"same prompt token count on both sides: {all(r['same_prompt_tokens'] for r in rows)}; "
        f"same decoded text on both sides: {all(r['same_decode_text'] for r in rows)}.",
        "ratio = median(provider) / median(raw), the goal value; paired ratio = median over "
        "repetitions of provider/raw within the repetition (runs seconds apart, so more robust to "
        "neighbours' CPU load). Above 1 is faster for tok/s, slower for latency.",
    ]
    return Result(
        name="provider",
        title="Embedded provider (LlamaCppClient) vs raw llama-cpp-python",
        headers=["figure", "provider", "raw", "ratio", "paired ratio"],
        rows=table,
        goals=[
            Goal("provider_prefill_ratio", prefill_ratio, TARGET_RATIO),
            Goal("provider_decode_ratio", decode_ratio, TARGET_RATIO),
        ],
        params={
            "reps": reps,
            "quick": quick,
            "model": os.path.basename(path),
            "n_ctx": N_CTX,
            "n_threads": n_threads,
            "decode_tokens": DECODE_TOKENS,
            "prefill_prompt_tokens": prompt_tokens,
            "temperature": 0.0,
            "repeat_penalty": 1.0,
            "seed": SEED,
        },
        notes=notes,
        raw={"medians": fig, "reps": rows},
    )
