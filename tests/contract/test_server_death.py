"""A model server that dies: the ``openai`` provider against a real ``llama_cpp.server`` that is
then SIGKILLed. The call after the death is classified unreachable and goes to the fallback at
once (no retries of a dead server); without a fallback, on_exhausted runs and
ModelUnavailableError is raised."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from autogen_core.models import UserMessage

from alina.models import CallRecord, ModelUnavailableError, ResilientClient
from alina.models.llamacpp import default_gguf_path
from alina.models.openai_compat import OpenAICompatClient
from tests.scripted import replay

from .conftest import OPENAI_MODEL, SERVER_START_TIMEOUT_S, _free_port

pytestmark = pytest.mark.integration

HI = [UserMessage(content="Say hi.", source="user")]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest_asyncio.fixture
async def doomed_server() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A llama_cpp.server of its own (the test kills it), serving the embedded GGUF."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_gguf_path()),
        "--model_alias",
        OPENAI_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        async with asyncio.timeout(SERVER_START_TIMEOUT_S):
            while not await asyncio.to_thread(_answers, url):
                if proc.returncode is not None:
                    pytest.fail(f"llama_cpp.server exited with {proc.returncode} during startup")
                await asyncio.sleep(0.25)
        yield proc, url
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_killed_server_is_unreachable_and_the_fallback_answers_at_once(doomed_server) -> None:
    proc, url = doomed_server
    primary = OpenAICompatClient(
        base_url=url,
        model=OPENAI_MODEL,
        json_schema_style="llamacpp",
        n_ctx=2048,
        max_tokens=8,
        timeout_s=60.0,
    )
    records: list[CallRecord] = []
    client = ResilientClient(
        "trader", primary, retries=2, fallback=replay("from the fallback"), listener=records.append
    )
    try:
        alive = await client.create(HI)
        assert isinstance(alive.content, str) and [r.outcome for r in records] == ["ok"]
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        after = await client.create(HI)
    finally:
        await primary.close()
    assert after.content == "from the fallback"
    assert [r.outcome for r in records] == ["ok", "unreachable", "fallback"]  # one attempt, no retries


async def test_a_killed_server_without_fallback_exhausts_and_calls_on_exhausted(doomed_server) -> None:
    proc, url = doomed_server
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    primary = OpenAICompatClient(base_url=url, model=OPENAI_MODEL, n_ctx=2048, max_tokens=8, timeout_s=60.0)
    calls: list[tuple[str, str]] = []
    client = ResilientClient("monitor", primary, retries=2, on_exhausted=lambda a, r: calls.append((a, r)))
    try:
        with pytest.raises(ModelUnavailableError):
            await client.create(HI)
    finally:
        await primary.close()
    assert len(calls) == 1 and calls[0][0] == "monitor" and url in calls[0][1]
