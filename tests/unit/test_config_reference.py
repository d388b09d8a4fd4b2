"""docs/configuration.md is generated from the config models and stays equal to what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alina.config import AlinaConfig
from alina.runtime.config_reference import render

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/configuration.md"
REGENERATE = "python -m alina.runtime.config_reference > docs/configuration.md"


def test_the_committed_reference_is_what_the_models_generate() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/configuration.md is stale: run {REGENERATE}"


def test_every_key_of_the_config_is_in_the_reference() -> None:
    text = DOC.read_text(encoding="utf-8")
    seen = 0
    for section, field in AlinaConfig.model_fields.items():
        assert f"## `{section}`" in text, section
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) else None
        for key in getattr(model, "model_fields", {}):
            seen += 1
            assert f"`{section}.{key}`" in text, f"{section}.{key}"
    assert seen > 50
    assert "`models.NAME.timeout_s`" in text and "`alerts.rules[].threshold`" in text
    assert "`trading.risk.max_order_notional` | float (> 0) | `1000.0`" in text
    undocumented = [line.split("|")[1].strip() for line in text.splitlines() if line.endswith("|  |")]
    assert not undocumented, f"give these fields a docstring in alina/settings/: {undocumented}"


def test_the_module_runs_as_the_readme_says() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "alina.runtime.config_reference"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    ).stdout
    assert out == render()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/configuration.md)" in readme and REGENERATE in readme
