"""``alina skills list``: table and JSON, broken plugins shown with their error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alina.skills.cli import app

from ._helpers import EXAMPLE_PLUGINS, plugin_source


@pytest.fixture(autouse=True)
def _default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALINA_CONFIG", raising=False)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_list_json_has_every_declared_field(shipped: list[str]) -> None:
    code, out = invoke("list", "--json", "--plugin-dir", str(EXAMPLE_PLUGINS))
    assert code == 0
    data = json.loads(out)
    by_name = {s["name"]: s for s in data["skills"]}
    assert list(by_name) == [*shipped, "position_size"]
    ps = by_name["position_size"]
    assert ps["agents"] == ["trader"] and ps["side_effects"] is False and ps["timeout_s"] == 2
    assert ps["source"] == "folder" and ps["plugin"] == "position_sizing" and ps["status"] == "enabled"
    assert ps["parameters"]["required"] == ["equity"]
    assert by_name["get_price"]["source"] == "builtin"
    assert data["problems"] == []


def test_list_shows_broken_and_disabled_plugins(
    plugin_dir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, shipped: list[str]
) -> None:
    d = plugin_dir({"good.py": plugin_source("good_tool"), "bad.py": "import nope_not_a_module\n"})
    monkeypatch.setenv("ALINA_SKILLS", "good_tool,get_price")
    code, out = invoke("list", "--json", "--plugin-dir", str(d))
    data = json.loads(out)
    assert code == 0
    assert [(s["name"], s["status"]) for s in data["skills"]][:2] == [
        ("get_price", "enabled"),
        ("good_tool", "enabled"),
    ]
    disabled = {s["name"] for s in data["skills"] if s["status"] == "disabled"}
    assert disabled == set(shipped) - {"get_price"}
    assert data["problems"][0]["plugin"] == "bad" and "ModuleNotFoundError" in data["problems"][0]["error"]

    code, out = invoke("list", "--plugin-dir", str(d))
    assert code == 0
    for text in ("good_tool", "disabled", "broken plugins", "bad", "ModuleNotFoundError"):
        assert text in out


def test_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("no_such_section: 1\n")
    code, out = invoke("list", "--config", str(cfg))
    assert code == 2 and "no_such_section" in out


def test_mounts_as_a_sub_command() -> None:
    root = typer.Typer()

    @root.command()
    def other() -> None: ...

    root.add_typer(app, name="skills")
    result = CliRunner().invoke(root, ["skills", "list", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["skills"]
