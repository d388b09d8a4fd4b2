"""Helpers for the toolloader tests: plugin sources and running a tool."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from autogen_core import CancellationToken
from autogen_core.tools import FunctionTool

EXAMPLE_PLUGINS = Path(__file__).resolve().parent / "plugins"

_GOOD_PLUGIN = '''
def {name}(text: str = "hi") -> str:
    """{doc}

    Args:
        text: Any text.
    """
    return "{name}:" + text


def register(skills):
    skills.add({name}, agents={agents!r})
'''


def plugin_source(name: str, doc: str = "Echo the text back.", agents: tuple[str, ...] = ("trader",)) -> str:
    """Source of a one-skill plugin declaring ``name`` for ``agents``."""
    return _GOOD_PLUGIN.format(name=name, doc=doc, agents=list(agents))


def call_tool(tool: FunctionTool, args: dict[str, Any]) -> Any:
    """Run a tool on a private event loop."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(tool.run_json(args, CancellationToken()))
    finally:
        loop.close()
