"""Fixtures for the toolloader tests: plugin folders and fake installed distributions."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shipped() -> list[str]:
    """Names of every skill the package ships (its built-in plugins), in load order."""
    from alina.skills.loader import discover

    return list(discover(environ={}).skills)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write ``{file name: source}`` into a folder (created once) and return it."""

    def make(files: dict[str, str], folder: str = "plugins") -> Path:
        d = tmp_path / folder
        d.mkdir(exist_ok=True)
        for name, source in files.items():
            (d / name).write_text(textwrap.dedent(source))
        return d

    return make


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Factory: an installed distribution declaring ``alina.skills`` entry points, on sys.path."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
        info = root / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
        (info / "entry_points.txt").write_text(f"[alina.skills]\n{lines}\n")
        for mod, source in (modules or {}).items():
            (root / f"{mod}.py").write_text(textwrap.dedent(source))

    return make


@pytest.fixture(autouse=True)
def _clean_plugin_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without ``ALINA_SKILLS`` and leaves no plugin modules behind."""
    monkeypatch.delenv("ALINA_SKILLS", raising=False)
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("alina_skill_plugins", "ep_plugin")):
            del sys.modules[name]
