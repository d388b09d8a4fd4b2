"""Provider for Ollama's native API (``/api/chat``) through the ``ollama`` package.

Tool calls use Ollama's ``format=<JSON schema>`` constraint with the *full* argument schema
(AutoGen's Ollama client strips schemas to type+description and ignores timeouts; this one
does neither). Not verified against a real Ollama server here: none can be installed on this
machine (see README).
"""

from __future__ import annotations

import time
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


class OllamaClient(JsonToolClient):
    provider = "ollama"

    def __init__(self, *, base_url: str, **kw: Any) -> None:
        super().__init__(**kw)
        import ollama

        self.base_url = base_url
        self._client = ollama.AsyncClient(host=base_url, timeout=self.timeout_s)

    async def _complete(
        self, chat: list[ChatDict], *, schema: dict[str, Any] | None, max_tokens: int, deadline: float
    ) -> Completion:
        import httpx
        import ollama

        options = {
            "temperature": self.temperature,
            "num_predict": max_tokens,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
            "num_ctx": self.n_ctx,
        }
        if deadline <= time.monotonic():
            raise ModelTimeoutError(f"ollama:{self.model}: deadline passed before the call")
        try:
            r = await self._client.chat(
                model=self.model, messages=chat, format=schema, options=options, stream=False
            )
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
        if r.message is None:
            raise MalformedOutputError(f"ollama:{self.model}: response has no message")
        return Completion(
            text=r.message.content or "",
            prompt_tokens=r.prompt_eval_count or 0,
            completion_tokens=r.eval_count or 0,
            finish_reason="length" if r.done_reason == "length" else "stop",
        )

    def _count_text(self, text: str) -> int:
        return estimate_tokens(text)
