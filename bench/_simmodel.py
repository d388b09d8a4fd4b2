"""A simulated model server: OpenAI-compatible ``/v1/chat/completions`` answering after a fixed
latency without using CPU (an ``asyncio.sleep``), for measuring the engine rather than a model.

Run it as its own process::

    python -m bench._simmodel --port 0 --latency 0.2     # prints "listening on http://HOST:PORT/v1"

A request with a JSON-schema ``response_format`` (the grammar-constrained tool turns of
``alina.models``) gets a valid instance of that schema: the first variant, enum values and
defaults where the schema has them, an order's side and type read from the user's request (the
run's mandate corrects pair and amount); a free-text request gets a short fixed answer. Every
request and the number in flight at its peak are counted (``GET /stats``), which the tests use
to check the model-call cap across processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import Any

from aiohttp import web

ANSWER = "Done: the specialists' reports above answer the request."


def _request_text(messages: list[dict[str, Any]]) -> str:
    users = [str(m.get("content", "")) for m in messages if m.get("role") == "user"]
    return users[0].lower() if users else ""


def instance(schema: dict[str, Any], text: str, name: str = "") -> Any:
    """A value valid against ``schema`` (the subset alina's tool grammars use)."""
    if "anyOf" in schema:
        variants = schema["anyOf"]
        calls = [v for v in variants if "tool" in v.get("properties", {})]
        return instance((calls or variants)[0], text, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        options = list(schema["enum"])
        for word in ("sell", "limit") if name in ("side", "order_type") else ():
            if word in options and word in text:
                return word
        return options[0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {k: instance(v, text, k) for k, v in props.items() if k in required}
    if kind == "string":
        if name == "symbol":
            found = re.search(r"\b([a-z]{2,6}/[a-z]{2,6})\b", text)
            return found.group(1).upper() if found else "BTC/USDT"
        return "x"
    if kind in ("number", "integer"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        value = max(1, low + 1) if kind == "integer" else (0.001 if low <= 0.001 else low * 2)
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    if kind == "array":
        return []
    return None


class SimServer:
    """The server; ``stats`` counts requests and the peak number in flight."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.requests = 0
        self.in_flight = 0
        self.peak = 0

    async def completions(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.latency_s)
        finally:
            self.in_flight -= 1
        messages = body.get("messages", [])
        fmt = body.get("response_format") or {}
        schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
        text = _request_text(messages)
        content = json.dumps(instance(schema, text)) if schema else ANSWER
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4
        return web.json_response(
            {
                "id": f"sim-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "sim"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": max(1, len(content) // 4),
                    "total_tokens": prompt_tokens + max(1, len(content) // 4),
                },
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "in_flight": self.in_flight, "peak": self.peak})

    async def reset(self, request: web.Request) -> web.Response:
        self.requests = self.peak = 0
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.completions)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/reset", self.reset)
        return app


async def _main(host: str, port: int, latency: float) -> None:
    server = SimServer(latency)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sys.stdout.write(f"listening on http://{host}:{bound}/v1\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.host, args.port, args.latency))


if __name__ == "__main__":
    main()
