"""Fixtures for the memory tests: embedders (real MiniLM, and a hashing one for logic tests),
Chroma locations (embedded, and a real ``chroma run`` server), the labeled retrieval set."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alina.memory_store.embeddings import SentenceTransformerEmbedder, Vectors, normalise

HERE = Path(__file__).resolve().parent
RETRIEVAL_SET = HERE / "retrieval_set.jsonl"


class HashEmbedder:
    """Deterministic bag-of-words vectors (signed feature hashing): fast, no model.

    Texts sharing words get high cosine scores; for tests of plumbing, not of retrieval quality.
    """

    name = "test-hash-256"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed_sync(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return normalise(out)

    async def embed(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return self.embed_sync(texts)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    """The real all-MiniLM-L6-v2, loaded once per session (offline, from the PyPI package)."""
    embedder = SentenceTransformerEmbedder()
    embedder.embed_sync(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def retrieval_set() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(memories, queries) of tests/memory/retrieval_set.jsonl."""
    records = [json.loads(line) for line in RETRIEVAL_SET.read_text(encoding="utf-8").splitlines() if line]
    memories = [r for r in records if r["type"] == "memory"]
    queries = [r for r in records if r["type"] == "query"]
    return memories, queries


def _heartbeat(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


class ChromaServer:
    """A real ``chroma run`` server (the Rust server in the chromadb wheel) on loopback."""

    def __init__(self, path: Path, port: int) -> None:
        self.path, self.port = path, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        chroma = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        log = open(self.path.parent / f"chroma-{self.port}.log", "ab")  # owned by the process
        self.proc = subprocess.Popen(
            [chroma, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not _heartbeat(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"chroma server on port {self.port} did not start; see {log.name}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def chroma_server(infra_root: Path, free_port: Callable[[], int]) -> Iterator[ChromaServer]:
    """A Chroma server on a free port for one test; stopped (if still running) afterwards."""
    port = free_port()
    path = infra_root / f"chroma-server-{port}"
    server = ChromaServer(path, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
