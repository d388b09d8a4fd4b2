"""Embedders: MiniLM offline (real model), Ollama against a scripted HTTP transport.

The Ollama embedder is tested only against ``httpx.MockTransport`` (scripted replies shaped
like Ollama's ``/api/embed``): no Ollama server can be installed on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from alina.memory_store.embeddings import (
    Embedder,
    EmbedderUnavailableError,
    OllamaEmbedder,
    SentenceTransformerEmbedder,
    minilm_model_path,
    normalise,
)


def test_normalise_gives_unit_rows_and_keeps_zero_rows() -> None:
    out = normalise([[3.0, 4.0], [0.0, 0.0]])
    assert out.dtype == np.float32
    assert out.tolist() == [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]


# -- Ollama (scripted transport) ---------------------------------------------------------------
def scripted(handler: Any) -> OllamaEmbedder:
    return OllamaEmbedder(
        "all-minilm",
        base_url="http://ollama.test:11434",
        batch_size=2,
        transport=httpx.MockTransport(handler),
    )


async def test_ollama_embed_batches_and_normalises() -> None:
    requests: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        requests.append({"path": request.url.path, **body})
        vectors = [[float(len(text)), 0.0, 2.0] for text in body["input"]]
        return httpx.Response(200, json={"model": body["model"], "embeddings": vectors})

    embedder = scripted(handler)
    assert isinstance(embedder, Embedder) and embedder.name == "ollama:all-minilm"
    out = await embedder.embed(["a", "bbb", "cc"])
    assert [r["path"] for r in requests] == ["/api/embed", "/api/embed"]
    assert [r["input"] for r in requests] == [["a", "bbb"], ["cc"]]
    assert {r["model"] for r in requests} == {"all-minilm"}
    assert out.shape == (3, 3) and np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert out[1] == pytest.approx(np.array([3.0, 0.0, 2.0]) / np.sqrt(13))
    await embedder.close()


async def test_ollama_errors_say_what_to_do() -> None:
    def missing_model(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": 'model "all-minilm" not found, try pulling it first'})

    with pytest.raises(EmbedderUnavailableError, match="HTTP 404.*ollama pull all-minilm"):
        await scripted(missing_model).embed(["x"])

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(EmbedderUnavailableError, match="is `ollama serve` running"):
        await scripted(refused).embed(["x"])

    def short(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"model": "all-minilm", "embeddings": [[1.0, 0.0]]})

    with pytest.raises(EmbedderUnavailableError, match="asked for 2 vectors, got 1"):
        await scripted(short).embed(["x", "y"])


# -- MiniLM (integration: the real model) --------------------------------------------------------
@pytest.mark.integration
async def test_minilm_vectors_are_unit_length_and_semantic(minilm: SentenceTransformerEmbedder) -> None:
    texts = [
        "Funding on BTC perpetuals flipped negative.",
        "Shorts are now paying longs on bitcoin swaps.",
        "The Grafana dashboard stopped updating.",
    ]
    out = await minilm.embed(texts)
    assert out.shape == (3, 384) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    sims = out @ out.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # a paraphrase is far closer than an unrelated text
    one_by_one = np.vstack([await minilm.embed([t]) for t in texts])
    assert np.allclose(one_by_one, out, atol=1e-5)  # batching does not change the vectors
    assert (await minilm.embed([])).shape == (0, 384)


@pytest.mark.integration
def test_minilm_loads_offline_without_network_or_hub_cache(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1, an empty HF cache, and (where unshare works) no network namespace at all."""
    code = (
        "from alina.memory_store.embeddings import SentenceTransformerEmbedder as E;"
        "v = E().embed_sync(['offline check']); print(v.shape[1], round(float((v * v).sum()), 4))"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "SENTENCE_TRANSFORMERS_HOME": str(tmp_path / "st"),
        "ANONYMIZED_TELEMETRY": "False",
    }
    cmd = [sys.executable, "-c", code]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        cmd = [unshare, "-n", *cmd]  # a network namespace with no interfaces: nothing can download
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["384", "1.0"]
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors"))
    assert (minilm_model_path() / "model.safetensors").is_file()
