"""RetrievalContext: retrieved memory is one system message after the stable prefix, replaced
(never appended) each turn, and absent from the history and saved state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_core import CancellationToken, FunctionCall
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import (
    AssistantMessage,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelFamily,
    SystemMessage,
    UserMessage,
)
from autogen_ext.models.replay import ReplayChatCompletionClient

from alina.agents import AgentMemory, RetrievalContext, query_text
from alina.memory_store.vector import MemoryItem, VectorConfig, VectorMemory

from .conftest import HashEmbedder

HEADER = RetrievalContext.HEADER
MEMORIES = [
    ("BTC funding turned negative twice this week", "trader"),
    ("CPU saturation happens above four concurrent model calls", "monitor"),
    ("ETH breakout above 2400 failed within an hour", "trader"),
    ("Always quote prices with timestamp and source", "shared"),
    ("SOL order book depth fell below two million", "trader"),
]
TOPICS = ["BTC funding", "ETH breakout", "SOL order book", "prices timestamp source", "BTC funding"]


def blocks(messages: Sequence[LLMMessage]) -> list[str]:
    systems = [str(m.content) for m in messages if isinstance(m, SystemMessage)]
    return [text for text in systems if text.startswith(HEADER)]


def user(text: str) -> UserMessage:
    return UserMessage(content=text, source="user")


# -- the context on its own (unit) ---------------------------------------------------------------
async def test_set_retrieved_replaces_and_sits_after_the_history() -> None:
    ctx = RetrievalContext(buffer_size=3, initial_messages=[SystemMessage(content="pinned rules")])
    for i in range(5):
        await ctx.add_message(user(f"turn {i}"))
        ctx.set_retrieved("mem", f"- [note] item for turn {i}")
    messages = await ctx.get_messages()
    assert [m.content for m in messages] == [
        "pinned rules",
        "turn 2",
        "turn 3",
        "turn 4",
        f"{HEADER}\n- [note] item for turn 4",
    ]
    assert len(blocks(messages)) == 1
    assert await ctx.get_history() == messages[:-1]
    ctx.set_retrieved("mem", None)
    assert blocks(await ctx.get_messages()) == []


async def test_several_sources_share_one_block_and_state_excludes_it() -> None:
    ctx = RetrievalContext(buffer_size=10)
    await ctx.add_message(user("hello"))
    ctx.set_retrieved("b", "- [note] from b")
    ctx.set_retrieved("a", "- [lesson] from a")
    assert blocks(await ctx.get_messages()) == [f"{HEADER}\n- [lesson] from a\n- [note] from b"]
    state = await ctx.save_state()
    assert "from a" not in str(state) and len(state["messages"]) == 1
    fresh = RetrievalContext(buffer_size=10)
    fresh.set_retrieved("a", "- stale")
    await fresh.load_state(state)
    assert blocks(await fresh.get_messages()) == []
    await ctx.clear()
    assert await ctx.get_messages() == []


async def test_window_drops_an_orphan_tool_result_and_component_round_trips() -> None:
    ctx = RetrievalContext(buffer_size=2)
    await ctx.add_message(user("price?"))
    call = FunctionCall(id="1", name="price", arguments="{}")
    await ctx.add_message(AssistantMessage(content=[call], source="t"))
    await ctx.add_message(
        FunctionExecutionResultMessage(
            content=[FunctionExecutionResult(content="43000", call_id="1", name="price", is_error=False)]
        )
    )
    await ctx.add_message(user("thanks"))
    history = await ctx.get_history()
    assert [type(m).__name__ for m in history] == ["UserMessage"]  # the orphan result is dropped
    clone = RetrievalContext.load_component(ctx.dump_component())
    assert isinstance(clone, RetrievalContext)


def test_query_text_is_the_last_non_system_text() -> None:
    msgs: list[LLMMessage] = [
        user("first"),
        AssistantMessage(content="second", source="a"),
        SystemMessage(content="x"),
    ]
    assert query_text(msgs) == "second"
    assert query_text([SystemMessage(content="only system")]) == ""


# -- with VectorMemory on Chroma (integration) -----------------------------------------------------
async def _memory(path: Path) -> VectorMemory:
    root = VectorMemory(VectorConfig(path=str(path), top_k=2, min_score=0.3), embedder=HashEmbedder())
    await root.add_many([MemoryItem(text, scope=scope, kind="note") for text, scope in MEMORIES])
    return root


@pytest.mark.integration
async def test_ten_turns_leave_exactly_one_retrieved_block(tmp_path: Path) -> None:
    trader = (await _memory(tmp_path)).for_agent("trader")
    ctx = RetrievalContext(buffer_size=4)
    for turn in range(10):
        await ctx.add_message(user(f"what about {TOPICS[turn % len(TOPICS)]}?"))
        result = await AgentMemory(trader).update_context(ctx)
        messages = await ctx.get_messages()
        [block] = blocks(messages)
        assert messages[-1].content == block  # last, after the history
        assert TOPICS[turn % len(TOPICS)].split()[0] in block.split("\n")[1]  # this turn's best hit
        assert "CPU saturation" not in block  # the monitor's scope is not visible to the trader
        assert len(result.memories.results) >= 1
        await ctx.add_message(AssistantMessage(content=f"answer {turn}", source="trader"))
    history = await ctx.get_history()
    assert blocks(history) == [] and blocks(ctx._messages) == []
    assert "Relevant memory" not in str(await ctx.save_state())

    await ctx.add_message(user("zebra giraffe"))  # nothing relevant: the block disappears
    result = await AgentMemory(trader).update_context(ctx)
    assert result.memories.results == [] and blocks(await ctx.get_messages()) == []


@pytest.mark.integration
async def test_other_contexts_get_autogens_default_behaviour(tmp_path: Path) -> None:
    trader = (await _memory(tmp_path)).for_agent("trader")
    ctx = BufferedChatCompletionContext(buffer_size=20)
    for turn in range(3):
        await ctx.add_message(user(f"what about {TOPICS[turn]}?"))
        await AgentMemory(trader).update_context(ctx)
    assert len(blocks(await ctx.get_messages())) == 3  # appended each turn, as AutoGen's memories do


@pytest.mark.integration
async def test_a_view_limited_to_some_kinds_retrieves_only_those(tmp_path: Path) -> None:
    root = VectorMemory(VectorConfig(path=str(tmp_path), top_k=3, min_score=-1), embedder=HashEmbedder())
    await root.add_many(
        [
            MemoryItem("Task: BTC trend | Outcome (completed): BTC fell 4.25% in a downtrend", "outcome"),
            MemoryItem("BTC trend answers must quote the percentage change", "lesson"),
            MemoryItem("trader on 'BTC trend': BTC/USDT close 21,925.7, downtrend", "note", scope="alina"),
        ]
    )
    ctx = RetrievalContext(buffer_size=4)
    await ctx.add_message(user("What is the BTC trend?"))
    alina = root.for_agent("alina", kinds=["lesson"])
    result = await AgentMemory(alina).update_context(ctx)
    assert [m.metadata["kind"] for m in result.memories.results if m.metadata] == ["lesson"]
    [block] = blocks(await ctx.get_messages())
    assert "quote the percentage" in block and "4.25%" not in block and "21,925.7" not in block
    assert len(await alina.search("What is the BTC trend?")) == 3  # an explicit search is not filtered
    every = await AgentMemory(root.for_agent("alina")).update_context(ctx)
    assert {m.metadata["kind"] for m in every.memories.results if m.metadata} == {"outcome", "lesson", "note"}
    with pytest.raises(ValueError, match="memory kinds must be among"):
        root.for_agent("alina", kinds=["lessons"])


class RecordingReplay(ReplayChatCompletionClient):
    """Replay client that records the messages of every call (what the model would read)."""

    def __init__(self, n: int) -> None:
        info = {
            "vision": False,
            "function_calling": False,
            "json_output": False,
            "family": ModelFamily.UNKNOWN,
            "structured_output": False,
            "multiple_system_messages": True,
        }
        super().__init__([f"reply {i}" for i in range(n)], model_info=info)  # type: ignore[arg-type]
        self.seen: list[list[LLMMessage]] = []

    async def create(self, messages: Sequence[LLMMessage], *a: Any, **kw: Any) -> CreateResult:
        self.seen.append(list(messages))
        return await super().create(messages, *a, **kw)


@pytest.mark.integration
async def test_assistant_agent_prompt_prefix_is_stable_and_memory_does_not_accumulate(tmp_path: Path) -> None:
    from autogen_agentchat.messages import TextMessage

    trader = (await _memory(tmp_path)).for_agent("trader")
    client = RecordingReplay(10)
    agent = AssistantAgent(
        "trader",
        model_client=client,
        system_message="You are the trader.",
        memory=[AgentMemory(trader)],
        model_context=RetrievalContext(buffer_size=50),
    )
    for turn in range(10):
        task = TextMessage(content=f"what about {TOPICS[turn % len(TOPICS)]}?", source="user")
        await agent.on_messages([task], CancellationToken())

    for turn, messages in enumerate(client.seen):
        assert messages[0].content == "You are the trader."  # the stable prefix comes first
        assert len(blocks(messages)) == 1 and messages[-1].content == blocks(messages)[0]
        if turn:  # everything before the retrieved block extends the previous call's prefix
            previous = client.seen[turn - 1][:-1]
            assert messages[: len(previous)] == previous
    state = await agent.save_state()
    assert "Relevant memory" not in str(state)
    assert len(blocks(await agent._model_context.get_messages())) == 1


def test_identical_memories_are_rendered_once_in_score_order() -> None:
    from alina.memory_store.vector import MemoryHit, render_hits, unique_hits

    def hit(text: str, score: float, kind: str = "outcome") -> MemoryHit:
        return MemoryHit(f"id{score}", text, score, kind, "shared", None, None, None)

    same = "Task: BTC trend? | Outcome (completed): downtrend"
    hits = [hit(same, 0.9), hit("healthy", 0.8, "note"), hit(same + "  ", 0.7), hit("flat", 0.6)]
    assert render_hits(hits).splitlines() == [f"- [outcome] {same}", "- [note] healthy", "- [outcome] flat"]
    assert [h.score for h in unique_hits(hits)] == [0.9, 0.8, 0.6]
