"""One real team run that places and cancels paper orders, killable at chosen points.

Run as a process by tests/e2e/test_orders_kill.py::

    python tests/e2e/_order_driver.py CONFIG RUN_ID (--task TEXT | --resume) [--kill POINT:N]

Everything is the product's own code on real Postgres: the run store, the order intents, the
paper exchange (its account in ``paper_accounts``), the trading skills and the run loop with its
checkpoints and resume. Only the models are scripted, and they decide from the conversation they
are shown (never from a counter), so a resumed run is scripted exactly like the first attempt:

* trader, first turn: a limit buy of 0.001 BTC/USDT 3% below the last price and a market buy of
  0.002 (two calls in one reply: positions 0 and 1 of the turn);
* trader, once its own earlier report shows the placed limit order: cancel it and sell 0.002
  at market;
* monitor: ``system_health``; ALINA: a one-line answer.

``--kill POINT:N`` SIGKILLs this process itself at the N-th passage of POINT: ``intent`` (after an
order intent is written, before the exchange is called), ``exchange`` (after the paper exchange
placed the order, before the intent is updated), ``cancel`` (after the exchange cancelled),
``commit`` (before a turn commit is written).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from autogen_core import FunctionCall
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    ModelInfo,
    RequestUsage,
)

from tests.scripted import INFO

LIMIT_ORDER = re.compile(r"placed buy limit [\d.]+ BTC/USDT @ [\d,.]+: open, filled 0 \(order (\S+)\)")


def _kill_at(
    cls: Any, name: str, point: str, when: str, passes: dict[str, int], target: tuple[str, int]
) -> None:
    original = getattr(cls, name)

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        def maybe_die() -> None:
            passes[point] = passes.get(point, 0) + 1
            if target == (point, passes[point]):
                sys.stdout.write(f"KILLING at {point}:{passes[point]}\n")
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        if when == "before":
            maybe_die()
        result = await original(*args, **kwargs)
        if when == "after":
            maybe_die()
        return result

    setattr(cls, name, wrapper)


class RuleModel(ChatCompletionClient):
    """A scripted model that answers from what it is shown (see the module docstring)."""

    def __init__(self, role: str, desk: Any) -> None:
        self.role, self.desk = role, desk

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:  # type: ignore[override]
        text = "\n".join(str(m.content) for m in messages if isinstance(getattr(m, "content", None), str))
        for m in messages:  # tool results the agent saw itself
            content = getattr(m, "content", None)
            if isinstance(content, list):
                text += "\n" + "\n".join(str(getattr(c, "content", c)) for c in content)
        content: Any
        if self.role == "trader":
            placed = LIMIT_ORDER.search(text)
            if placed is None:
                last = (await self.desk.ticker("BTC/USDT")).last
                price = round(last * 0.97, 2)
                content = [
                    FunctionCall(
                        id="t-0",
                        name="place_order",
                        arguments=json.dumps(
                            {
                                "symbol": "BTC/USDT",
                                "side": "buy",
                                "amount": 0.001,
                                "order_type": "limit",
                                "price": price,
                            }
                        ),
                    ),
                    FunctionCall(
                        id="t-1",
                        name="place_order",
                        arguments=json.dumps(
                            {"symbol": "BTC/USDT", "side": "buy", "amount": 0.002, "order_type": "market"}
                        ),
                    ),
                ]
            else:
                content = [
                    FunctionCall(
                        id="t-2", name="cancel_order", arguments=json.dumps({"order_id": placed.group(1)})
                    ),
                    FunctionCall(
                        id="t-3",
                        name="place_order",
                        arguments=json.dumps(
                            {"symbol": "BTC/USDT", "side": "sell", "amount": 0.002, "order_type": "market"}
                        ),
                    ),
                ]
        elif self.role == "monitor":
            content = [FunctionCall(id="m-0", name="system_health", arguments="{}")]
        else:
            content = "Orders placed, the limit order cancelled and the position closed."
        return CreateResult(
            finish_reason="function_calls" if isinstance(content, list) else "stop",
            content=content,
            usage=RequestUsage(prompt_tokens=10, completion_tokens=5),
            cached=False,
        )

    def create_stream(self, messages: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        async def gen() -> Any:
            yield await self.create(messages, **kwargs)

        return gen()

    async def close(self) -> None:
        return None

    def actual_usage(self) -> RequestUsage:
        return RequestUsage(prompt_tokens=0, completion_tokens=0)

    total_usage = actual_usage

    def count_tokens(self, messages: Any, **kwargs: Any) -> int:
        return 10

    def remaining_tokens(self, messages: Any, **kwargs: Any) -> int:
        return 4000

    @property
    def capabilities(self) -> Any:
        return INFO

    @property
    def model_info(self) -> ModelInfo:
        return INFO  # type: ignore[return-value]


async def main(args: argparse.Namespace) -> int:
    from alina.config import load_config
    from alina.memory_store import RunStore
    from alina.memory_store.runs import RunStore as _Store
    from alina.runtime.modes import SystemMode
    from alina.skills.bindings import bind_desk
    from alina.skills.recorder import run_scope
    from alina.team import AlreadyCompleted, TeamRunner
    from alina.trading.desk import open_desk
    from alina.trading.intents import PgIntentStore
    from alina.trading.paper import PaperExchange

    passes: dict[str, int] = {}
    if args.kill:
        point, n = args.kill.split(":")
        target = (point, int(n))
        _kill_at(PgIntentStore, "record", "intent", "after", passes, target)
        _kill_at(PaperExchange, "create_order", "exchange", "after", passes, target)
        _kill_at(PaperExchange, "cancel_order", "cancel", "after", passes, target)
        _kill_at(_Store, "commit_turn", "commit", "before", passes, target)

    cfg = load_config(Path(args.config))
    store = RunStore(cfg.postgres.dsn())
    await store.open()
    modes = SystemMode.for_config(cfg)
    async with PgIntentStore(cfg.postgres.dsn()) as intents:
        desk = await open_desk(cfg.trading, intents=intents, mode_source=lambda: modes.current)
        bind = contextlib.ExitStack()
        bind.enter_context(bind_desk(desk))  # the desk of every skill call in this run
        clients = {n: RuleModel(n, desk) for n in ("alina", "trader", "monitor", "optimizer", "selector")}
        runner = TeamRunner(
            cfg,
            sink=store,
            clients=clients,
            modes=modes,  # type: ignore[arg-type]
            order_symbols=lambda: desk.exchange.symbols,
        )
        print(f"run {args.run_id} started", flush=True)
        with run_scope(args.run_id):
            if args.resume:
                try:
                    result = await runner.resume(args.run_id)
                except AlreadyCompleted:  # killed after its last write: done, as `alina run --resume` says
                    print(json.dumps({"status": "completed", "note": "already completed"}), flush=True)
                    return 0
            else:
                result = await runner.run(args.task, run_id=args.run_id)
        await runner.close()
        bind.close()
        await desk.close()
    await modes.close()
    await store.close()
    print(json.dumps({"status": result.status, "error": result.error, "turns": result.turns}), flush=True)
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("run_id")
    parser.add_argument("--task")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill")
    sys.exit(asyncio.run(main(parser.parse_args())))
