"""Fixtures for the provider contract suite.

* ``llama_server``: ``python -m llama_cpp.server`` on a free loopback port for the session
  (the ``openai`` provider talks to it); killed at the end; its log is shown if it fails to start.
* ``ollama_shim``: the Ollama-API test shim (NOT a real Ollama server, see ``ollama_shim``) in a
  thread for the session, answering from the real embedded model.
* ``provider``: parametrized over ``llamacpp`` / ``openai`` / ``ollama``; one shared client per
  provider per session plus a factory for fresh ones.
* ``block_network`` / ``net``: ``socket.socket.connect`` (and ``connect_ex``,
  ``socket.create_connection``) raise for every address except the provider's own server.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from alina.models import JsonToolClient
from alina.models.llamacpp import default_gguf_path

N_CTX = 4096
MAX_TOKENS = 128
SERVER_START_TIMEOUT_S = 180.0
OLLAMA_MODEL = "smollm2:135m"
OPENAI_MODEL = "smollm2"


# -- network guard ---------------------------------------------------------------------------
class NetworkBlocked(OSError):
    """A contract test tried to connect somewhere other than its provider's server."""


@dataclass
class NetGuard:
    allowed: frozenset[tuple[str, int]]
    attempts: list[Any] = field(default_factory=list)  # every connect attempt, allowed or not
    blocked: list[Any] = field(default_factory=list)

    def check(self, address: Any) -> None:
        self.attempts.append(address)
        if isinstance(address, tuple) and len(address) >= 2 and (address[0], address[1]) in self.allowed:
            return
        self.blocked.append(address)
        allowed = sorted(f"{h}:{p}" for h, p in self.allowed) or ["nothing"]
        raise NetworkBlocked(
            f"contract test network guard: connect to {address!r} blocked (allowed: {allowed})"
        )


@contextlib.contextmanager
def block_network(allowed: Collection[tuple[str, int]] = frozenset()) -> Iterator[NetGuard]:
    """Make every socket connect fail unless it goes to one of ``allowed`` (host, port)."""
    guard = NetGuard(frozenset(allowed))
    saved = {name: socket.socket.__dict__.get(name) for name in ("connect", "connect_ex")}
    orig_connect, orig_connect_ex = socket.socket.connect, socket.socket.connect_ex
    orig_create_connection = socket.create_connection

    def connect(self: socket.socket, address: Any) -> None:
        guard.check(address)
        return orig_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check(address)
        return orig_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        guard.check(tuple(address))
        return orig_create_connection(address, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]
    socket.create_connection = create_connection  # type: ignore[assignment]
    try:
        yield guard
    finally:
        socket.create_connection = orig_create_connection
        for name, value in saved.items():
            if value is None:
                delattr(socket.socket, name)
            else:
                setattr(socket.socket, name, value)


# -- servers ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def gguf_path() -> Path:
    return default_gguf_path()


@dataclass
class LlamaServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="session")
def llama_server(gguf_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` serving the embedded GGUF as ``smollm2`` on loopback."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path),
        "--model_alias",
        OPENAI_MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(N_CTX),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = LlamaServer(port, proc, log)

    def fail(why: str) -> None:
        _stop(proc)
        tail = log.read_text(errors="replace")[-4000:]
        pytest.fail(
            f"llama_cpp.server {why}\ncommand: {' '.join(cmd)}\n--- log ({log}) ---\n{tail}", pytrace=False
        )

    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            fail(f"exited with code {proc.returncode} during startup")
        try:
            with urllib.request.urlopen(f"{server.base_url}/models", timeout=2) as resp:
                if resp.status == 200 and OPENAI_MODEL in resp.read().decode():
                    break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            fail(f"did not answer GET /v1/models within {SERVER_START_TIMEOUT_S:g}s")
        time.sleep(0.25)
    try:
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def ollama_shim(gguf_path: Path) -> Iterator[Any]:
    from .ollama_shim import OllamaShim

    shim = OllamaShim(gguf_path, model_name=OLLAMA_MODEL, n_ctx=N_CTX).start()
    try:
        yield shim
    finally:
        shim.stop()


# -- providers -------------------------------------------------------------------------------
@dataclass
class Provider:
    name: str
    factory: Callable[..., JsonToolClient]
    allowed: frozenset[tuple[str, int]]  # where its calls may connect
    server: Any = None  # LlamaServer / OllamaShim / None
    created: list[JsonToolClient] = field(default_factory=list)
    _shared: JsonToolClient | None = None

    def make(self, **overrides: Any) -> JsonToolClient:
        """A fresh client (own usage counters); closed at the end of the session."""
        kw: dict[str, Any] = dict(
            n_ctx=N_CTX,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            timeout_s=120.0,
            seed=42,
            tool_policy="first",
        )
        kw.update(overrides)
        client = self.factory(**kw)
        self.created.append(client)
        return client

    @property
    def client(self) -> JsonToolClient:
        """The client shared by every test of this provider."""
        if self._shared is None:
            self._shared = self.make()
        return self._shared


PROVIDERS = ["llamacpp", "openai", "ollama"]


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=PROVIDERS)
async def provider(request: pytest.FixtureRequest, gguf_path: Path) -> AsyncIterator[Provider]:
    name = request.param
    if name == "llamacpp":
        from alina.models.llamacpp import LlamaCppClient

        p = Provider(
            name, lambda **kw: LlamaCppClient(model="smollm2", model_path=gguf_path, **kw), frozenset()
        )
    elif name == "openai":
        from alina.models.openai_compat import OpenAICompatClient

        server: LlamaServer = request.getfixturevalue("llama_server")
        p = Provider(
            name,
            lambda **kw: OpenAICompatClient(
                base_url=server.base_url,
                api_key=None,
                model=OPENAI_MODEL,
                **{"json_schema_style": "llamacpp", **kw},
            ),
            frozenset({("127.0.0.1", server.port)}),
            server,
        )
    else:
        from alina.models.ollama import OllamaClient

        shim = request.getfixturevalue("ollama_shim")
        p = Provider(
            name,
            lambda **kw: OllamaClient(base_url=shim.base_url, model=OLLAMA_MODEL, **kw),
            frozenset({("127.0.0.1", shim.port)}),
            shim,
        )
    try:
        yield p
    finally:
        for client in p.created:
            await client.close()


@pytest.fixture
def net(provider: Provider) -> Iterator[NetGuard]:
    """Network guard for a contract test: only the provider's own server is reachable."""
    with block_network(provider.allowed) as guard:
        yield guard
    assert not guard.blocked, f"{provider.name}: connections outside the provider's server: {guard.blocked}"


@pytest.fixture
def network_guard() -> Callable[..., contextlib.AbstractContextManager[NetGuard]]:
    """``block_network`` itself, for tests that set up their own allowed addresses."""
    return block_network
