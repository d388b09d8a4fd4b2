"""Provider for any OpenAI-compatible server (Ollama's /v1, llama_cpp.server, vLLM, ...).

Uses the ``openai`` SDK directly (not AutoGen's OpenAI client) so that tool calls go through the
same grammar-constrained JSON protocol as every other provider; the SDK's own retries are off
(resilience is the governor's job) and the timeout is per call. Plain text turns stream
(server-sent events), so the chat shows an Ollama or vLLM answer as it is generated.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Any, Literal

from openai.types.chat import ChatCompletion

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

_SSL_CONTEXT: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~50 ms of CPU), and every
    team of `alina serve`/`alina worker` builds five clients per run."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


class OpenAICompatClient(JsonToolClient):
    provider = "openai"
    streams = True

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        json_schema_style: Literal["json_schema", "llamacpp"] = "json_schema",
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        import openai

        self.base_url = base_url
        self.json_schema_style = json_schema_style
        # A placeholder key: local servers ignore it; the SDK insists on one.
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            max_retries=0,
            timeout=self.timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(verify=_ssl_context()),
        )

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.json_schema_style == "llamacpp":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}

    def _kwargs(self, chat: list[ChatDict], max_tokens: int, deadline: float) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            # OpenAI has no repeat penalty; a frequency penalty is the nearest equivalent.
            "frequency_penalty": min(2.0, (self.repeat_penalty - 1.0) * 2),
            "timeout": max(0.001, deadline - time.monotonic()),
        }

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's exceptions as the model errors the resilience layer acts on."""
        import openai

        try:
            yield
        except openai.APITimeoutError:
            raise ModelTimeoutError(f"openai:{self.model} at {self.base_url} timed out") from None
        except openai.APIConnectionError as exc:  # refused, DNS, dropped connection
            raise ModelUnreachableError(
                f"openai:{self.model}: cannot reach {self.base_url} ({exc.__cause__ or exc})"
            ) from None
        except openai.APIStatusError as exc:
            what = f"openai:{self.model} at {self.base_url} answered HTTP {exc.status_code}"
            if exc.status_code == 400 and is_context_overflow(str(exc.message)):
                raise ContextOverflowError(f"{what}: {str(exc.message)[:200]}") from None
            raise ModelUnreachableError(f"{what}: {str(exc.message)[:200]}") from None
        except ValueError as exc:  # json.JSONDecodeError: a 200 body labelled JSON that is not JSON
            raise MalformedOutputError(
                f"openai:{self.model} at {self.base_url}: response body is not JSON ({exc})"
            ) from None

    async def _complete(
        self, chat: list[ChatDict], *, schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        kwargs = self._kwargs(chat, max_tokens, deadline)
        if schema is not None:
            kwargs["response_format"] = self._response_format(schema)
        with self._errors():
            r = await self._client.chat.completions.create(**kwargs)
        if not isinstance(r, ChatCompletion):  # the SDK returns the raw text of a non-JSON body
            raise MalformedOutputError(
                f"openai:{self.model} at {self.base_url}: response is not a chat completion: {str(r)[:200]!r}"
            )
        if not r.choices:
            raise MalformedOutputError(f"openai:{self.model}: response has no choices")
        choice = r.choices[0]
        usage = r.usage
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
        )

    async def _complete_streaming(
        self, chat: list[ChatDict], *, max_tokens: int, deadline: float, sink: TokenSink
    ) -> Completion:
        """A text turn as server-sent events: each delta goes to ``sink`` as it arrives; usage
        from the final chunk (``stream_options.include_usage``), estimated when a server sends
        none. The call's deadline holds between chunks too."""
        kwargs = self._kwargs(chat, max_tokens, deadline)
        pieces: list[str] = []
        finish, usage = "stop", None
        with self._errors():
            stream = await self._client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                async for chunk in stream:
                    if time.monotonic() > deadline:
                        raise ModelTimeoutError(
                            f"openai:{self.model} at {self.base_url} timed out mid-stream"
                        )
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        if choice.delta.content:
                            pieces.append(choice.delta.content)
                            sink(choice.delta.content)
                        if choice.finish_reason == "length":
                            finish = "length"
        text = "".join(pieces)
        return Completion(
            text=text,
            prompt_tokens=usage.prompt_tokens
            if usage
            else estimate_tokens(" ".join(m["content"] for m in chat)),
            completion_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            finish_reason="length" if finish == "length" else "stop",
        )

    def _count_text(self, text: str) -> int:
        return estimate_tokens(text)

    async def close(self) -> None:
        await self._client.close()
