"""The notebooks in ``notebooks/`` and the README's Python API example, run as a user would.

Each notebook is executed top to bottom with nbclient on a real IPython kernel (ipykernel), on
the embedded model, against the session's Postgres and Redis (one database for all of them);
the test reads the outputs of the cells tagged with their key results. The plots the notebooks
draw are written to ``docs/img/`` for the README. The notebooks are committed without outputs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.api.test_app import write_config

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
IMAGES = {  # notebook, cell tag -> the README's picture
    ("03_trading", "equity-plot"): "notebook-equity-curve.png",
    ("05_monitoring", "metrics-plot"): "notebook-run-metrics.png",
}


def test_the_five_notebooks_are_committed_without_outputs() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_quickstart",
        "02_memory",
        "03_trading",
        "04_optimization",
        "05_monitoring",
    ]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, (
                    f"{path.name}: clear outputs"
                )
        assert "widgets" not in nb["metadata"], path.name


def _text(cell: dict[str, Any]) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "data" in out and "text/plain" in out["data"]:
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


def _tagged(nb: Any, tag: str) -> dict[str, Any]:
    [cell] = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return dict(cell)


def _png(cell: dict[str, Any]) -> bytes:
    images = [out["data"]["image/png"] for out in cell["outputs"] if "image/png" in out.get("data", {})]
    assert images, "the cell drew no figure"
    return base64.b64decode(images[0])


@pytest.fixture(scope="module")
def notebook_config(infra_root: Path, pg_service: Any, redis_service: Any) -> Iterator[Path]:
    name = f"nb_{uuid.uuid4().hex[:10]}"
    yield write_config(infra_root, pg_service, redis_service, name)
    with psycopg.connect(pg_service.dsn_for("postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.mark.slow
@pytest.mark.integration
def test_notebooks_run_top_to_bottom(notebook_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    # The kernel is a subprocess: it finds the config, this checkout and the model through its env.
    monkeypatch.setenv("ALINA_CONFIG", str(notebook_config))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ALINA_ALLOW_MODEL_REQUESTS", "1")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    done: dict[str, Any] = {}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(REPO / "notebooks")}}
        ).execute()
        done[path.stem] = nb
    img = REPO / "docs" / "img"
    img.mkdir(parents=True, exist_ok=True)
    for (stem, tag), name in IMAGES.items():
        (img / name).write_bytes(_png(_tagged(done[stem], tag)))

    quick = done["01_quickstart"]
    run = _text(_tagged(quick, "run"))
    assert re.search(r"status: (completed|stopped)", run), run
    assert "user:" in _text(_tagged(quick, "transcript"))
    calls = _text(_tagged(quick, "tool-calls"))
    assert re.search(r"trader called \w+\(", calls) and "route -> " in calls, calls
    tokens = _text(_tagged(quick, "tokens"))
    total = int(re.search(r"'total': (\d+)", tokens).group(1))  # type: ignore[union-attr]
    assert total > 0 and "'wall':" in tokens, tokens
    assert "latency_ms" in _text(_tagged(quick, "frame"))

    memory = done["02_memory"]
    assert "best: A BTC/USDT trend check should cover" in _text(_tagged(memory, "search"))
    assert "agent:trader -observed-> asset:BTC/USDT" in _text(_tagged(memory, "graph"))
    _png(_tagged(memory, "graph-plot"))
    assert "forgot 1 memory" in _text(_tagged(memory, "forget"))

    trading = done["03_trading"]
    assert re.search(r"buy 0.005 BTC/USDT: closed @ [\d,.]+", _text(_tagged(trading, "paper-order")))
    orders = _text(_tagged(trading, "open-orders"))
    assert "'limit'" in orders and "canceled: canceled" in orders, orders
    assert "BTC/USDT" in _text(_tagged(trading, "positions"))
    assert re.search(
        r"sma_cross\{'fast': 12, 'slow': 48\}: return [-+]\d", _text(_tagged(trading, "backtest"))
    )

    opt = done["04_optimization"]
    assert "answer_check" in _text(_tagged(opt, "scores")) or "output_check" in _text(_tagged(opt, "scores"))
    _png(_tagged(opt, "score-plot"))
    diff = _text(_tagged(opt, "prompt-diff"))
    assert re.search(r"candidate v\d+: candidate", diff), diff
    assert re.search(r"^\+.*Keep the report to two short lines\.$", diff, re.M), diff
    history = _text(_tagged(opt, "prompt-history"))
    assert re.search(r"v(\d+) promoted, then rolled back: v\d+ runs the text of v\d+", history), history
    assert "rollback" in history and "promoted" in history, history

    mon = done["05_monitoring"]
    assert re.search(r"run [0-9a-f]{32}: (completed|stopped)", _text(_tagged(mon, "run")))
    assert re.search(r"last hour: [1-9]\d* model calls", _text(_tagged(mon, "status")))


def readme_example() -> str:
    """The README's Python API example (the code block after the ``api-example`` marker)."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- api-example.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no Python API example"
    return match.group(1)


@pytest.mark.slow
@pytest.mark.integration
def test_the_readme_python_example_runs(notebook_config: Path) -> None:
    env = {
        **os.environ,
        "ALINA_CONFIG": str(notebook_config),
        "ALINA_ALLOW_MODEL_REQUESTS": "1",
        "PYTHONPATH": str(REPO),
        "ANONYMIZED_TELEMETRY": "False",
    }
    proc = subprocess.run(
        [sys.executable, "-c", readme_example()],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert re.match(r"(completed|stopped) ", lines[0]), textwrap.shorten(proc.stdout, 500)
    assert "'total':" in proc.stdout and "sma_cross" in proc.stdout, proc.stdout
