"""``alina skills``: inspect the skill plugins (mounted by ``alina.cli``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alina.skills._contract import Skill
from alina.skills.loader import SkillLoader, SkillSet

app = typer.Typer(help="Skills (agent tools) loaded as plugins.", no_args_is_help=True, add_completion=False)

_out = Console(highlight=False, soft_wrap=True, emoji=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


@app.callback()
def _group() -> None:
    """Skills (agent tools) loaded as plugins: built-ins, entry points and the plugin folder."""


def _skill_json(skill: Skill, status: str) -> dict[str, Any]:
    return {
        "name": skill.name,
        "description": skill.description,
        "agents": list(skill.agents),
        "side_effects": skill.side_effects,
        "timeout_s": skill.timeout_s,
        "source": skill.source,
        "plugin": skill.plugin,
        "origin": skill.origin,
        "status": status,
        "parameters": skill.parameters(),
    }


def skillset_json(found: SkillSet) -> dict[str, Any]:
    """The ``--json`` object: ``skills`` (enabled, then disabled) and ``problems``."""
    return {
        "skills": [_skill_json(s, "enabled") for s in found.skills.values()]
        + [_skill_json(s, "disabled") for s in found.disabled],
        "problems": [
            {"plugin": p.plugin, "source": p.source, "origin": p.origin, "error": p.error}
            for p in found.problems
        ],
    }


def _loader(config: Path | None, plugin_dir: Path | None) -> SkillLoader:
    from alina.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _err.print(f"[bold red]invalid configuration[/] in {escape(exc.source)}:")
        for line in exc.problems:
            _err.print(f"  {escape(line)}")
        raise typer.Exit(2) from None
    loader = SkillLoader.from_config(cfg)
    if plugin_dir is not None:
        loader.plugin_dir = plugin_dir
    return loader


@app.command("list")
def list_skills(
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    config: Path | None = typer.Option(None, "--config", "-c", help="config file (default: ./config.yaml)"),
    plugin_dir: Path | None = typer.Option(
        None, "--plugin-dir", help="plugin folder (default: skills.plugin_dir)"
    ),
) -> None:
    """List every skill (name, agents, side effects, timeout, source) and every broken plugin."""
    logging.getLogger("alina.skills.loader").setLevel(logging.ERROR)  # the table shows the problems
    found = _loader(config, plugin_dir).skillset
    if as_json:
        typer.echo(json.dumps(skillset_json(found), indent=2))
        return
    table = Table(title="skills", title_justify="left")
    for col in ("name", "agents", "side effects", "timeout", "source", "status"):
        table.add_column(col, no_wrap=col in ("name", "status"))
    rows = [(s, "enabled") for s in found.skills.values()] + [(s, "disabled") for s in found.disabled]
    for s, status in rows:
        source = s.source if s.source == "builtin" else f"{s.source}: {s.plugin}"
        table.add_row(
            s.name,
            ", ".join(s.agents),
            "yes" if s.side_effects else "no",
            f"{s.timeout_s:g}s",
            escape(source),
            status,
        )
    _out.print(table)
    if found.problems:
        problems = Table(title="broken plugins (skipped)", title_justify="left")
        for col in ("plugin", "source", "origin", "error"):
            problems.add_column(col)
        for p in found.problems:
            problems.add_row(escape(p.plugin), p.source, escape(p.origin), escape(p.error))
        _out.print(problems)
