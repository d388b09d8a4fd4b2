"""A minimal stand-in for the Ollama HTTP API, for tests only. It is NOT a real Ollama server.

No Ollama server can be installed on this machine, so the contract suite runs ``OllamaClient``
(the real ``ollama`` Python package over real HTTP on loopback) against this shim, which
answers from the real embedded GGUF model through llama-cpp-python in-process.

Implemented:
  * ``POST /api/chat``: ``model``, ``messages`` (role + text
    content), ``format`` (a JSON schema, compiled with ``LlamaGrammar.from_json_schema``, or
    ``"json"``), ``options.num_predict`` / ``temperature`` / ``seed`` / ``repeat_penalty`` /
    ``top_k`` / ``top_p`` / ``stop``. The reply has Ollama's non-streaming shape: ``model``,
    ``created_at``, ``message.role/content``, ``done``, ``done_reason`` ("stop"/"length"),
    ``prompt_eval_count``, ``eval_count`` and the ``*_duration`` fields (nanoseconds). With
    ``"stream": true`` (Ollama's default) the reply is chunked NDJSON: one ``done: false`` object
    per generated piece, then the ``done`` object with the counts.
  * Free-text generation stops when the client disconnects (as Ollama does), so a timed-out
    call does not keep the CPU busy; grammar-constrained generation runs to its end.
  * ``GET /api/tags``, ``GET /api/version``, ``GET /`` ("Ollama is running"); errors as
    ``{"error": ...}`` with 400 (bad request), 404 (unknown model) or 500.

What this leaves UNVERIFIED about a real Ollama server:
  * Ollama's own chat templates (Go templates from the Modelfile; here llama-cpp-python applies
    the GGUF's Jinja template), its handling of several or trailing system messages, and its
    prompt truncation when the prompt exceeds ``num_ctx``.
  * Ollama's schema -> grammar conversion for ``format`` (Ollama has its own converter; keywords
    such as ``anyOf``/``enum``/``additionalProperties`` may be handled differently there).
  * ``options.num_ctx`` (ignored here: the context size is fixed when the shim starts), model
    loading/``keep_alive``, ``load_duration``, the exact prompt count of a streamed reply, tools,
    images, thinking, and how real Ollama reports errors, queueing and concurrency limits.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SHIM_VERSION = "0.0.0-alina-test-shim"


class _Model:
    """One llama.cpp model; calls are serialised (a ``Llama`` is not thread-safe)."""

    def __init__(self, path: Path, n_ctx: int) -> None:
        from llama_cpp import Llama

        self.path = path
        self.llama = Llama(model_path=str(path), n_ctx=n_ctx, verbose=False)
        self.lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def grammar(self, fmt: Any) -> Any:
        from llama_cpp import LlamaGrammar
        from llama_cpp.llama_grammar import JSON_GBNF

        if fmt in (None, ""):
            return None
        # Declared key order (llama.cpp's C++ converter parses schemas as ordered JSON too): the
        # grammar lists properties in that order, so `tool` comes before `arguments`.
        key = "json" if fmt == "json" else json.dumps(fmt)
        g = self._grammars.get(key)
        if g is None:
            if fmt == "json":
                g = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            elif isinstance(fmt, dict):
                g = LlamaGrammar.from_json_schema(key, verbose=False)
            else:
                raise ValueError(f'format must be "json" or a JSON schema object, got {fmt!r}')
            self._grammars[key] = g
        return g


def _client_gone(conn: socket.socket) -> bool:
    """True when the peer closed the connection (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class OllamaShim:
    """A threaded loopback HTTP server speaking a subset of Ollama's API (see module docstring)."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str = "smollm2:135m",
        n_ctx: int = 4096,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.model_name = model_name
        self.model = _Model(Path(model_path), n_ctx)
        self.requests: list[dict[str, Any]] = []  # every /api/chat body, for assertions
        self.aborted = 0  # generations stopped because the client went away
        shim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # stdlib name
                return None

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # stdlib name
                if self.path == "/api/version":
                    self._send(200, {"version": SHIM_VERSION})
                elif self.path == "/api/tags":
                    self._send(
                        200,
                        {
                            "models": [
                                {
                                    "name": shim.model_name,
                                    "model": shim.model_name,
                                    "size": shim.model.path.stat().st_size,
                                    "details": {"format": "gguf", "family": "llama"},
                                }
                            ]
                        },
                    )
                elif self.path == "/":
                    data = b"Ollama is running (test shim)"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self._send(404, {"error": f"404 page not found: {self.path}"})

            def do_POST(self) -> None:  # stdlib name
                if self.path != "/api/chat":
                    self._send(404, {"error": f"404 page not found: {self.path}"})
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                    if not isinstance(body, dict):
                        raise ValueError("request body must be a JSON object")
                except ValueError as exc:
                    self._send(400, {"error": f"invalid request: {exc}"})
                    return
                shim.requests.append(body)
                status, reply = shim.chat(body, self.connection)
                if status == 499:  # client gone: nobody to answer
                    self.close_connection = True
                    return
                if isinstance(reply, dict):
                    self._send(status, reply)
                else:
                    self._send_lines(reply)

            def _send_lines(self, objects: Iterator[dict[str, Any]]) -> None:
                """Ollama's streaming reply: one JSON object per line, chunked, written as the
                model generates; a client that goes away ends the generation."""
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for obj in objects:
                        data = (json.dumps(obj) + "\n").encode()
                        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    shim.aborted += 1
                    self.close_connection = True
                finally:
                    close = getattr(objects, "close", None)
                    if close is not None:
                        close()  # stops the generation and releases the model

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = host, int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def chat(
        self, body: dict[str, Any], conn: socket.socket | None = None
    ) -> tuple[int, dict[str, Any] | Iterator[dict[str, Any]]]:
        """Answer one ``/api/chat`` request body: (HTTP status, JSON reply, or the objects of a
        streamed reply)."""
        import numpy as np
        from llama_cpp import LogitsProcessorList

        if body.get("model") != self.model_name:
            return 404, {"error": f'model "{body.get("model")}" not found, try pulling it first'}
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages
        ):
            return 400, {"error": "messages must be a list of {role, content} objects"}
        chat = [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in messages]
        options = body.get("options") or {}
        num_predict = int(options.get("num_predict", -1))
        kwargs: dict[str, Any] = {
            "messages": chat,
            "max_tokens": num_predict if num_predict > 0 else None,
            "temperature": float(options.get("temperature", 0.8)),
            "repeat_penalty": float(options.get("repeat_penalty", 1.1)),
            "top_k": int(options.get("top_k", 40)),
            "top_p": float(options.get("top_p", 0.9)),
        }
        if "seed" in options:
            kwargs["seed"] = int(options["seed"])
        if options.get("stop"):
            kwargs["stop"] = options["stop"]
        try:
            kwargs["grammar"] = self.model.grammar(body.get("format"))
        except (ValueError, RuntimeError) as exc:
            return 400, {"error": f"invalid format: {exc}"}

        if body.get("stream", True):  # Ollama streams unless told otherwise
            return 200, self._stream(kwargs)
        gone = False
        eos = self.model.llama.token_eos()

        def stop_if_client_gone(_ids: Any, scores: Any) -> Any:
            # Called per token; exceptions here would be swallowed by llama.cpp's ctypes
            # callback, so once the client is gone every token but end-of-sequence is masked.
            nonlocal gone
            if gone or (conn is not None and _client_gone(conn)):
                gone = True
                scores[:] = -np.inf
                scores[eos] = 0.0
            return scores

        if kwargs["grammar"] is None:
            # A grammar may forbid end-of-sequence mid-object, so constrained output (short,
            # bounded by num_predict) is not aborted.
            kwargs["logits_processor"] = LogitsProcessorList([stop_if_client_gone])
        started = time.monotonic_ns()
        with self.model.lock:
            if conn is not None and _client_gone(conn):
                self.aborted += 1
                return 499, {}
            try:
                r: Any = self.model.llama.create_chat_completion(**kwargs)  # stream=False: a dict
            except Exception as exc:  # e.g. prompt longer than the context window
                return 500, {"error": f"{type(exc).__name__}: {exc}"}
        if gone:
            self.aborted += 1
            return 499, {}
        elapsed = time.monotonic_ns() - started
        choice = r["choices"][0]
        usage = r.get("usage") or {}
        return 200, {
            "model": self.model_name,
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
            "done": True,
            "done_reason": "length" if choice.get("finish_reason") == "length" else "stop",
            "total_duration": elapsed,
            "load_duration": 0,
            "prompt_eval_count": int(usage.get("prompt_tokens", 0)),
            "prompt_eval_duration": 0,
            "eval_count": int(usage.get("completion_tokens", 0)),
            "eval_duration": elapsed,
        }

    def _stream(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The streamed reply: a ``done: false`` object per generated piece, then the ``done``
        object with the counts (prompt tokens: the messages' text tokenized, an approximation
        of Ollama's count of the templated prompt)."""
        started = time.monotonic_ns()
        llama = self.model.llama

        def stamp() -> str:
            return datetime.now(UTC).isoformat().replace("+00:00", "Z")

        with self.model.lock:
            pieces, finish = [], "stop"
            for chunk in llama.create_chat_completion(**kwargs, stream=True):
                choice = chunk["choices"][0]
                piece = choice.get("delta", {}).get("content") or ""
                if choice.get("finish_reason") == "length":
                    finish = "length"
                if piece:
                    pieces.append(piece)
                    message = {"role": "assistant", "content": piece}
                    yield {"model": self.model_name, "created_at": stamp(), "message": message, "done": False}
            text = " ".join(m["content"] for m in kwargs["messages"])
            prompt_tokens = len(llama.tokenize(text.encode(), add_bos=True))
            completion_tokens = len(llama.tokenize("".join(pieces).encode(), add_bos=False))
        elapsed = time.monotonic_ns() - started
        yield {
            "model": self.model_name,
            "created_at": stamp(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": finish,
            "total_duration": elapsed,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 0,
            "eval_count": completion_tokens,
            "eval_duration": elapsed,
        }

    def start(self) -> OllamaShim:
        self._thread = threading.Thread(target=self.server.serve_forever, name="ollama-shim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def main() -> None:  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description="Ollama API test shim (NOT a real Ollama server)")
    parser.add_argument("--model", help="GGUF path (default: the embedded SmolLM2)")
    parser.add_argument("--name", default="smollm2:135m")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--n_ctx", type=int, default=4096)
    args = parser.parse_args()
    if args.model is None:
        from alina.models.llamacpp import default_gguf_path

        args.model = default_gguf_path()
    shim = OllamaShim(args.model, model_name=args.name, n_ctx=args.n_ctx, port=args.port)
    print(f"ollama test shim on {shim.base_url} serving {args.name}")
    shim.server.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
