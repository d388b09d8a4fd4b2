"""The vector memory as AutoGen sees it: a ``Memory`` adapter and the ``RetrievalContext``.

With a :class:`RetrievalContext` the retrieved items form one system message at the end of the
prompt that is *replaced* each turn: the stable prefix (system prompt, history) stays
byte-identical and retrieved text never accumulates in the agent's history or saved state.
The store itself (:class:`~alina.memory_store.vector.VectorMemory`) knows nothing of AutoGen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from autogen_core import CancellationToken
from autogen_core.memory import (
    Memory,
    MemoryContent,
    MemoryMimeType,
    MemoryQueryResult,
    UpdateContextResult,
)
from autogen_core.model_context import BufferedChatCompletionContext, ChatCompletionContext
from autogen_core.models import FunctionExecutionResultMessage, LLMMessage, SystemMessage

from alina.memory_store.vector import MemoryHit, MemoryItem, VectorMemory, render_hits
from alina.memory_store.vector._items import RESERVED

__all__ = ["AgentMemory", "RetrievalContext", "as_agent_memory", "memory_content", "query_text"]


class RetrievalContext(BufferedChatCompletionContext):
    """A windowed chat context whose retrieved memories are one replaceable system message.

    ``get_messages()`` returns the leading system messages of the context (pinned, never
    windowed out), the last ``buffer_size`` other messages, then ONE system message holding the
    memories retrieved for this turn. :meth:`set_retrieved` replaces (never appends) that block;
    it is not part of the history, so it is absent from ``save_state()`` and never accumulates.
    The agent's own system prompt is prepended by AutoGen's ``AssistantAgent`` before all this.
    """

    component_provider_override = "alina.agents.RetrievalContext"
    HEADER = "Relevant memory from earlier runs (may be outdated: the conversation above comes first):"

    def __init__(self, buffer_size: int, initial_messages: list[LLMMessage] | None = None) -> None:
        super().__init__(buffer_size, initial_messages)
        self._retrieved: dict[str, str] = {}

    async def get_history(self) -> list[LLMMessage]:
        """Pinned system messages plus the windowed history, without the retrieved block."""
        pinned = 0
        while pinned < len(self._messages) and isinstance(self._messages[pinned], SystemMessage):
            pinned += 1
        window = self._messages[pinned:][-self._buffer_size :]
        if window and isinstance(window[0], FunctionExecutionResultMessage):
            window = window[1:]  # its function call was windowed out; an orphan result confuses models
        return [*self._messages[:pinned], *window]

    async def get_messages(self) -> list[LLMMessage]:
        """History (see :meth:`get_history`) followed by the current retrieved block, if any."""
        history = await self.get_history()
        block = self.retrieved_message
        return [*history, block] if block is not None else history

    def set_retrieved(self, source: str, text: str | None) -> None:
        """Replace what memory ``source`` retrieved for this turn (``None``/empty removes it)."""
        if text:
            self._retrieved[source] = text
        else:
            self._retrieved.pop(source, None)

    @property
    def retrieved_message(self) -> SystemMessage | None:
        """The one system message holding every source's current retrieval, or None."""
        if not self._retrieved:
            return None
        body = "\n".join(self._retrieved[k] for k in sorted(self._retrieved))
        return SystemMessage(content=f"{self.HEADER}\n{body}")

    async def clear(self) -> None:
        await super().clear()
        self._retrieved.clear()

    async def load_state(self, state: Mapping[str, Any]) -> None:
        await super().load_state(state)
        self._retrieved.clear()


def _text_of(message: LLMMessage) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return content
    if isinstance(message, FunctionExecutionResultMessage):
        return "\n".join(r.content for r in message.content)
    return " ".join(c for c in content if isinstance(c, str))


def query_text(messages: Sequence[LLMMessage], max_chars: int = 2000) -> str:
    """What to search for before a model call: the last non-system message with text in it."""
    for message in reversed(messages):
        if isinstance(message, SystemMessage):
            continue
        text = _text_of(message).strip()
        if text:
            return text[-max_chars:]
    return ""


def memory_content(hit: MemoryHit) -> MemoryContent:
    """A hit as AutoGen ``MemoryContent`` (text; score and provenance in ``metadata``)."""
    meta = {k: v for k, v in hit.to_dict().items() if k != "text"}
    return MemoryContent(content=hit.text, mime_type=MemoryMimeType.TEXT, metadata=meta)


class AgentMemory(Memory):
    """A :class:`VectorMemory` view as an AutoGen ``Memory`` (``AssistantAgent(memory=[m])``)."""

    def __init__(self, memory: VectorMemory) -> None:
        self.memory = memory

    async def add(self, content: MemoryContent, cancellation_token: CancellationToken | None = None) -> None:
        """Memory protocol: store ``content``; its metadata may set kind, scope, run_id,
        message_seq and id (other primitive metadata is kept as is)."""
        meta = dict(content.metadata or {})
        text = content.content if isinstance(content.content, str) else None
        if isinstance(content.content, dict):
            text = json.dumps(content.content, sort_keys=True, ensure_ascii=False)
        if text is None:
            raise TypeError(f"AgentMemory stores text and JSON only (got {type(content.content).__name__})")
        extra = {
            k: v
            for k, v in meta.items()
            if k not in (*RESERVED, "id") and isinstance(v, str | int | float | bool)
        }
        seq = meta.get("message_seq")
        scope = str(meta.get("scope") or self.memory.scope)
        item = MemoryItem(
            text,
            str(meta.get("kind", "note")),
            scope,
            meta.get("run_id"),
            int(seq) if seq is not None else None,
            id=str(meta.get("id") or ""),
            extra=extra,
        )
        await self.memory.add_many([item])

    async def query(
        self, query: str | MemoryContent, cancellation_token: CancellationToken | None = None, **kwargs: Any
    ) -> MemoryQueryResult:
        """Memory protocol: ``VectorMemory.search`` (kwargs: scopes, kinds, top_k, min_score), as
        MemoryContent."""
        text = query if isinstance(query, str) else str(query.content)
        hits = await self.memory.search(text, **kwargs)
        return MemoryQueryResult(results=[memory_content(h) for h in hits])

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        """Retrieve for the latest message and put the hits in the context.

        With a :class:`RetrievalContext` the hits replace this memory's retrieved block (an empty
        result removes it); with any other context AutoGen's default applies: one system message
        is appended when something matched. Fails open (see ``VectorMemory.retrieve``).
        """
        source = self.memory.source
        if isinstance(model_context, RetrievalContext):
            history = await model_context.get_history()  # not last turn's retrieved block
        else:
            history = await model_context.get_messages()
        hits = await self.memory.retrieve(query_text(history))
        if hits is None:
            return self._no_memories(model_context, source)
        block = render_hits(hits)
        if isinstance(model_context, RetrievalContext):
            model_context.set_retrieved(source, block or None)
        elif hits:
            await model_context.add_message(SystemMessage(content=f"{RetrievalContext.HEADER}\n{block}"))
        return UpdateContextResult(memories=MemoryQueryResult(results=[memory_content(h) for h in hits]))

    @staticmethod
    def _no_memories(model_context: ChatCompletionContext, source: str) -> UpdateContextResult:
        if isinstance(model_context, RetrievalContext):
            model_context.set_retrieved(source, None)  # never leave an earlier turn's block behind
        return UpdateContextResult(memories=MemoryQueryResult(results=[]))

    async def clear(self) -> None:
        """Memory protocol: delete every memory in this view's own scope."""
        await self.memory.clear()

    async def close(self) -> None:
        """Memory protocol: release the store's client (stored memories are kept)."""
        await self.memory.close()


def as_agent_memory(memory: Memory | VectorMemory) -> Memory:
    """``memory`` as an AutoGen ``Memory`` (a :class:`VectorMemory` view gets the adapter)."""
    return AgentMemory(memory) if isinstance(memory, VectorMemory) else memory
