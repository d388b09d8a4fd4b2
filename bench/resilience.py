"""Resilience: governor overhead per model call; time from a dead model server to ModelUnavailableError.

1. Governor overhead. One caller makes calls to a zero-time model in a loop; per call we time
   entering and leaving the concurrency cap around it. Sides, alternating order each
   repetition: the anchor, a bare ``asyncio.Semaphore``; the governor, process-local (priority
   queue, metrics); the governor with Redis leases (a Lua script per admission, a heartbeat
   task, a ZREM on release) on a real redis-server started on a free port. Reported: p50 and
   p99 per call, and the added p50 over the anchor (goal < 1 ms).
2. Time to give up. A ``ResilientClient`` (retries 2, a fallback) whose models die:
   * hanging: a scripted provider that never answers (the real ``JsonToolClient`` timeout path),
     primary and fallback alike; bound = timeout × (1 + retries) + fallback timeout + 1 s;
   * killed: the ``openai`` provider against a real ``llama_cpp.server`` that answered one call
     and was then SIGKILLed (fallback: a second, also killed server); same bound with the
     configured 60 s timeout (a dead server is refused at once, so it is far below).
   Reported: seconds from the call to ``on_exhausted`` and to ``ModelUnavailableError``.

3. The mode check per tool call: what safety in code costs every tool call (the loader's gate on
   side effects against the mode and the user's mandate, plus the order mandate check), against
   a no-op call (goal < 0.1 ms).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench._harness import Goal, Result, median, progress, ratio

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".alina"
CALLS_PER_REP = 2000
OVERHEAD_MS_MAX = 1.0
HANG_TIMEOUT_S = 0.3
KILLED_TIMEOUT_S = 60.0
RETRIES = 2
SLACK_S = 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- 1. governor overhead ------------------------------------------------------------------------
async def _per_call_s(enter: Any, calls: int) -> list[float]:
    """Seconds per call of ``async with enter(): await model()`` for a zero-time model."""

    async def model() -> None:
        await asyncio.sleep(0)

    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        async with enter():
            await model()
        out.append(time.perf_counter() - t0)
    return out


async def _overhead(reps: int, calls: int, redis_url: str) -> dict[str, Any]:
    from alina.models import Governor

    sem = asyncio.Semaphore(4)
    local = Governor(4, name="bench-local")
    leased = Governor(4, name="bench-leased", redis_url=redis_url, lease_ttl_s=30)
    sides: list[tuple[str, Any]] = [
        ("semaphore", lambda: sem),
        ("governor", lambda: local.slot("chat")),
        ("governor+redis", lambda: leased.slot("chat")),
    ]
    for _, enter in sides:  # warm-up: imports, script load, first connection
        await _per_call_s(enter, 200)
    p50: dict[str, list[float]] = {n: [] for n, _ in sides}
    p99: dict[str, list[float]] = {n: [] for n, _ in sides}
    for rep in range(reps):
        progress(f"overhead rep {rep + 1}/{reps}: {calls} calls per side")
        for name, enter in sides if rep % 2 == 0 else reversed(sides):
            ms = np.array(await _per_call_s(enter, calls)) * 1000
            p50[name].append(float(np.percentile(ms, 50)))
            p99[name].append(float(np.percentile(ms, 99)))
    leases_left = await leased.leases()  # 0 when every lease was released
    await leased.close()
    return {"p50_ms": p50, "p99_ms": p99, "leases_left": leases_left}


# -- 2. time from a dead server to ModelUnavailableError ----------------------------------------
async def _time_to_give_up(primary: Any, fallback: Any) -> dict[str, float]:
    from autogen_core.models import UserMessage

    from alina.models import ModelUnavailableError, ResilientClient

    t0 = time.perf_counter()
    seen: dict[str, float] = {}

    def on_exhausted(agent: str, reason: str) -> None:
        seen["on_exhausted_s"] = time.perf_counter() - t0

    client = ResilientClient("trader", primary, retries=RETRIES, fallback=fallback, on_exhausted=on_exhausted)
    try:
        await client.create([UserMessage(content="What is the BTC price?", source="user")])
    except ModelUnavailableError:
        seen["raised_s"] = time.perf_counter() - t0
    if set(seen) != {"on_exhausted_s", "raised_s"}:
        raise RuntimeError(f"the dead servers did not end in on_exhausted + ModelUnavailableError: {seen}")
    return seen


def _hanging_client(name: str) -> Any:
    from alina.models import Completion, JsonToolClient

    class Hanging(JsonToolClient):
        """A server that accepted the request and never answers."""

        provider = "hanging"

        async def _complete(self, chat: Any, *, schema: Any, max_tokens: int, deadline: float) -> Completion:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        def _count_text(self, text: str) -> int:
            return len(text.split())

    return Hanging(model=name, timeout_s=HANG_TIMEOUT_S)


def _start_llama_server() -> tuple[subprocess.Popen[bytes], str]:
    from alina.models.llamacpp import default_gguf_path

    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_gguf_path()),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.25)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start within 180 s")


async def _killed(reps: int) -> list[dict[str, float]]:
    from autogen_core.models import UserMessage

    from alina.models.openai_compat import OpenAICompatClient

    progress("starting two llama_cpp.server processes (primary, fallback)")
    servers = [_start_llama_server(), _start_llama_server()]
    clients = [
        OpenAICompatClient(
            base_url=url,
            model="smollm2",
            json_schema_style="llamacpp",
            n_ctx=2048,
            max_tokens=8,
            timeout_s=KILLED_TIMEOUT_S,
        )
        for _, url in servers
    ]
    try:
        for c in clients:  # both answer before they die
            await c.create([UserMessage(content="Say hi.", source="user")])
        for proc, _ in servers:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        progress("servers killed; measuring")
        return [await _time_to_give_up(*clients) for _ in range(reps)]
    finally:
        for c in clients:
            await c.close()
        for proc, _ in servers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


async def _give_up(reps: int) -> dict[str, Any]:
    from alina.models import allow_model_requests

    with allow_model_requests():
        hanging = []
        for rep in range(reps):
            progress(f"hanging servers rep {rep + 1}/{reps}")
            hanging.append(await _time_to_give_up(_hanging_client("primary"), _hanging_client("fallback")))
        killed = await _killed(reps)
    return {"hanging": hanging, "killed": killed}


# -- the mode check per tool call -------------------------------------------------------------------
MODE_CHECK_MS_MAX = 0.1


def mode_check_per_tool_call(reps: int, quick: bool) -> dict[str, Any] | None:
    """What every tool call pays for safety in code: the loader's gate (the skill's side effects
    against the run's mode and the user's mandate) plus the order skill's mandate check, against
    the anchor of calling a no-op function (the floor of any per-call check)."""
    from alina.runtime.modes import SystemMode
    from alina.skills._contract import SkillRegistry
    from alina.skills.context import RunContext, run_context
    from alina.skills.loader import side_effect_refusal
    from alina.trading.mandate import Mandate, packaged_symbols

    def place_order(symbol: str) -> str:
        """Place an order.

        Args:
            symbol: pair
        """
        return symbol

    skill = SkillRegistry().add(place_order, agents=["trader"], side_effects=True)
    modes = SystemMode()  # no stores: the check reads the cached value, as in a run
    mandate = Mandate.from_request("Buy 0.001 BTC/USDT at market", packaged_symbols())
    ctx = RunContext(
        "t",
        run_id="r",
        mandate=mandate,
        side_effect_refusal=lambda: "safe" if modes.blocks_side_effects else None,
    )
    n = 2_000 if quick else 20_000

    def noop(_: Any) -> None:
        return None

    def per_call_ms(fn: Any) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(skill)
        return (time.perf_counter() - t0) * 1000 / n

    def check(s: Any) -> None:
        side_effect_refusal(s)
        mandate.check_order("buy", "BTC/USDT", 0.001)

    checks, anchors = [], []
    with run_context(ctx):
        for _ in range(reps):
            anchors.append(per_call_ms(noop))
            checks.append(per_call_ms(check))
    value, anchor = median(checks), median(anchors)
    return {
        "rows": [
            [
                "mode + mandate check per tool call, ms (anchor: a no-op call)",
                value,
                anchor,
                ratio(value, anchor),
            ]
        ],
        "goals": [
            Goal("mode + mandate check per tool call, ms", value, MODE_CHECK_MS_MAX, higher_is_better=False)
        ],
        "raw": {"check_ms": checks, "noop_ms": anchors, "calls_per_rep": n},
    }


def run(reps: int, quick: bool) -> Result:
    from alina.runtime.services import RedisService

    calls = CALLS_PER_REP // 4 if quick else CALLS_PER_REP
    WORK.mkdir(exist_ok=True)
    redis = RedisService(data_dir=WORK / "bench-resilience-redis", port=_free_port())
    progress(f"starting redis-server ({redis.data_dir})")
    redis.start()
    try:
        overhead = asyncio.run(_overhead(reps, calls, redis.url))
    finally:
        redis.stop()
    give_up = asyncio.run(_give_up(reps))

    p50 = {k: median(v) for k, v in overhead["p50_ms"].items()}
    p99 = {k: median(v) for k, v in overhead["p99_ms"].items()}
    added_local = p50["governor"] - p50["semaphore"]
    added_redis = p50["governor+redis"] - p50["semaphore"]
    hang_bound = HANG_TIMEOUT_S * (1 + RETRIES) + HANG_TIMEOUT_S + SLACK_S
    killed_bound = KILLED_TIMEOUT_S * (1 + RETRIES) + KILLED_TIMEOUT_S + SLACK_S
    hang = {k: median([r[k] for r in give_up["hanging"]]) for k in ("on_exhausted_s", "raised_s")}
    killed = {k: median([r[k] for r in give_up["killed"]]) for k in ("on_exhausted_s", "raised_s")}
    rows: list[list[Any]] = [
        ["per-call p50 ms, asyncio.Semaphore (anchor)", p50["semaphore"], p50["semaphore"], 1.0],
        [
            "per-call p50 ms, governor (process-local)",
            p50["governor"],
            p50["semaphore"],
            ratio(p50["governor"], p50["semaphore"]),
        ],
        [
            "per-call p50 ms, governor + Redis leases",
            p50["governor+redis"],
            p50["semaphore"],
            ratio(p50["governor+redis"], p50["semaphore"]),
        ],
        [
            "per-call p99 ms, semaphore / governor / governor + Redis",
            f"{p99['semaphore']:.3f} / {p99['governor']:.3f} / {p99['governor+redis']:.3f}",
            None,
            None,
        ],
        ["added p50 ms per call, governor (local)", added_local, None, None],
        ["added p50 ms per call, governor + Redis", added_redis, None, None],
        [
            f"hanging servers: s to on_exhausted (bound {hang_bound:g} s)",
            hang["on_exhausted_s"],
            hang_bound,
            ratio(hang["on_exhausted_s"], hang_bound),
        ],
        [
            "hanging servers: s to ModelUnavailableError",
            hang["raised_s"],
            hang_bound,
            ratio(hang["raised_s"], hang_bound),
        ],
        [
            f"killed llama_cpp.server: s to on_exhausted (bound {killed_bound:g} s)",
            killed["on_exhausted_s"],
            killed_bound,
            ratio(killed["on_exhausted_s"], killed_bound),
        ],
        [
            "killed llama_cpp.server: s to ModelUnavailableError",
            killed["raised_s"],
            killed_bound,
            ratio(killed["raised_s"], killed_bound),
        ],
    ]
    goals = [
        Goal("added p50 ms per call, governor (local)", added_local, OVERHEAD_MS_MAX, higher_is_better=False),
        Goal("added p50 ms per call, governor + Redis", added_redis, OVERHEAD_MS_MAX, higher_is_better=False),
        Goal("hanging: s to ModelUnavailableError", hang["raised_s"], hang_bound, higher_is_better=False),
        Goal("killed: s to ModelUnavailableError", killed["raised_s"], killed_bound, higher_is_better=False),
    ]
    raw: dict[str, Any] = {"overhead": overhead, "give_up": give_up}
    extra = mode_check_per_tool_call(reps, quick)
    if extra is not None:
        rows += extra.get("rows", [])
        goals += extra.get("goals", [])
        raw["mode_check_per_tool_call"] = extra.get("raw", {})
    return Result(
        name="resilience",
        title="Resilience: governor overhead per model call against asyncio.Semaphore; time from a dead "
        "model server to ModelUnavailableError",
        headers=["measure", "value", "anchor / bound", "ratio"],
        rows=rows,
        goals=goals,
        notes=[
            "Overhead: one caller, a zero-time model, no contention (the cost every call pays); "
            f"{calls} calls per side per repetition, sides alternating order; the table shows the "
            "median over repetitions of each side's p50/p99.",
            "Governor + Redis: a real redis-server on loopback; per call one EVALSHA (take a lease), "
            "a heartbeat task, one ZREM (release).",
            f"Hanging: provider timeout {HANG_TIMEOUT_S} s, retries {RETRIES}, fallback one attempt; "
            "bound = timeout × (1 + retries) + fallback timeout + 1 s.",
            f"Killed: two llama_cpp.server processes answered a call each and were SIGKILLed; timeout "
            f"{KILLED_TIMEOUT_S:g} s, retries {RETRIES}. A dead server refuses the connection: the "
            "primary is not retried (unreachable), the fallback is tried once.",
            "Mode check: the loader's side-effect gate (mode + mandate) and the order mandate check, "
            "mean per call over a tight loop, median over repetitions; the anchor is a no-op call.",
        ],
        params={"reps": reps, "quick": quick, "calls_per_rep": calls, "governor_limit": 4},
        raw=raw,
    )
