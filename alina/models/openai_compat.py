"""Provider for any OpenAI-compatible server (Ollama's /v1, llama_cpp.server, vLLM, ...).

Uses the ``openai`` SDK directly (not AutoGen's OpenAI client) so that tool calls go through the
same grammar-constrained JSON protocol as every other provider; the SDK's own retries are off
(resilience is the governor's job) and the timeout is per call.
"""

from __future__ import annotations

import ssl
import time
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

    async def _complete(
        self, chat: list[ChatDict], *, schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": chat,
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            # OpenAI has no repeat penalty; a frequency penalty is the nearest equivalent.
            "frequency_penalty": min(2.0, (self.repeat_penalty - 1.0) * 2),
            "timeout": max(0.001, deadline - time.monotonic()),
        }
        if schema is not None:
            kwargs["response_format"] = self._response_format(schema)
        try:
            r = await self._client.chat.completions.create(**kwargs)
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

    def _count_text(self, text: str) -> int:
        return estimate_tokens(text)

    async def close(self) -> None:
        await self._client.close()
