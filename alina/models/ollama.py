"""Provider for Ollama's native API (``/api/chat``) through the ``ollama`` package.

Tool calls use Ollama's ``format=<JSON schema>`` constraint with the *full* argument schema
(AutoGen's Ollama client strips schemas to type+description and ignores timeouts; this one
does neither). Plain text turns stream (``stream: true``), so the chat shows the answer as it is
generated. Not verified against a real Ollama server here: none can be installed on this
machine (see README); the contract tests run it against a shim of Ollama's API.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from alina.models._client import Completion, JsonToolClient, estimate_tokens
from alina.models._errors import (
    ContextOverflowError,
    MalformedOutputError,
    ModelTimeoutError,
    ModelUnreachableError,
    is_context_overflow,
)
from alina.models._protocol import ChatDict
from alina.models._stream import TokenSink


class OllamaClient(JsonToolClient):
    provider = "ollama"
    streams = True

    def __init__(self, *, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        import ollama

        self.base_url = base_url
        self._client = ollama.AsyncClient(host=base_url, timeout=self.timeout_s)

    def _options(self, max_tokens: int) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "num_predict": max_tokens,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
            "num_ctx": self.n_ctx,
        }

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The client's exceptions as the model errors the resilience layer acts on."""
        import httpx
        import ollama

        try:
            yield
        except httpx.TimeoutException:
            raise ModelTimeoutError(f"ollama:{self.model} at {self.base_url} timed out") from None
        except (httpx.ConnectError, ConnectionError) as exc:
            raise ModelUnreachableError(
                f"ollama:{self.model}: cannot reach {self.base_url} ({exc}); is `ollama serve` running?"
            ) from None
        except ollama.ResponseError as exc:
            if is_context_overflow(exc.error):
                raise ContextOverflowError(
                    f"ollama:{self.model} at {self.base_url}: HTTP {exc.status_code}: {exc.error[:200]}"
                ) from None
            raise ModelUnreachableError(
                f"ollama:{self.model} at {self.base_url}: HTTP {exc.status_code}: {exc.error[:200]}"
            ) from None
        except httpx.HTTPError as exc:  # RemoteProtocolError, ReadError, ... (timeouts caught above)
            raise ModelUnreachableError(
                f"ollama:{self.model}: {self.base_url} failed mid-request ({type(exc).__name__}: {exc})"
            ) from None
        except ValueError as exc:  # JSONDecodeError / pydantic ValidationError on an HTTP 200
            raise MalformedOutputError(
                f"ollama:{self.model} at {self.base_url}: response is not an Ollama chat reply: "
                f"{str(exc)[:200]}"
            ) from None

    async def _complete(
        self, chat: list[ChatDict], *, schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        if deadline <= time.monotonic():
            raise ModelTimeoutError(f"ollama:{self.model}: deadline passed before the call")
        with self._errors():
            r = await self._client.chat(
                model=self.model,
                messages=chat,
                format=schema,
                options=self._options(max_tokens),
                stream=False,
            )
        if r.message is None:
            raise MalformedOutputError(f"ollama:{self.model}: response has no message")
        return Completion(
            text=r.message.content or "",
            prompt_tokens=r.prompt_eval_count or 0,
            completion_tokens=r.eval_count or 0,
            finish_reason="length" if r.done_reason == "length" else "stop",
        )

    async def _complete_streaming(
        self, chat: list[ChatDict], *, max_tokens: int, deadline: float, sink: TokenSink
    ) -> Completion:
        """A text turn as Ollama streams it (one JSON object per line): each piece goes to
        ``sink`` as it arrives; the counts come with the last (``done``) object. The call's
        deadline holds between pieces too."""
        if deadline <= time.monotonic():
            raise ModelTimeoutError(f"ollama:{self.model}: deadline passed before the call")
        pieces: list[str] = []
        last: Any = None
        with self._errors():
            stream = await self._client.chat(
                model=self.model, messages=chat, options=self._options(max_tokens), stream=True
            )
            async for chunk in stream:
                if time.monotonic() > deadline:
                    raise ModelTimeoutError(f"ollama:{self.model} at {self.base_url} timed out mid-stream")
                piece = chunk.message.content if chunk.message is not None else None
                if piece:
                    pieces.append(piece)
                    sink(piece)
                last = chunk
        if last is None or not last.done:
            raise MalformedOutputError(
                f"ollama:{self.model} at {self.base_url}: the stream ended before done"
            )
        return Completion(
            text="".join(pieces),
            prompt_tokens=last.prompt_eval_count or 0,
            completion_tokens=last.eval_count or 0,
            finish_reason="length" if last.done_reason == "length" else "stop",
        )

    def _count_text(self, text: str) -> int:
        return estimate_tokens(text)
