"""The layers point down: what the import contracts (``lint-imports`` in ``make lint``) cannot see.

* loading the configuration loads neither AutoGen nor numpy (nor ccxt, Chroma, torch);
* the configuration's copies of facts owned elsewhere agree with their owners (the assembled
  GGUF files, the prompt folder);
* a skill's argument schema, built without AutoGen, is the one its AutoGen tool sends.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alina.agents import build_tool
from alina.config import ASSEMBLED_GGUFS, PROMPT_DIR
from alina.skills.loader import SkillLoader

HEAVY = ("autogen_core", "autogen_agentchat", "autogen_ext", "numpy", "ccxt", "chromadb", "torch")


def test_loading_the_config_loads_no_agent_framework_and_no_numpy() -> None:
    code = (
        "import json, sys; from alina.config import load_config; load_config(environ={}); "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == []


def test_config_copies_agree_with_their_owners() -> None:
    from alina.meta_prompts._prompts import PROMPT_DIR as OWNED_PROMPT_DIR
    from alina.models.rungs import RUNGS

    assert {r.filename for r in RUNGS.values()} == ASSEMBLED_GGUFS
    assert PROMPT_DIR == OWNED_PROMPT_DIR.resolve()


@pytest.mark.parametrize("agent", ["trader", "monitor", "optimizer"])
def test_a_skills_schema_is_the_one_its_autogen_tool_sends(agent: str) -> None:
    skills = SkillLoader().skills_for(agent)
    assert skills
    for skill in skills:
        assert skill.parameters() == dict(build_tool(skill, agent).schema["parameters"]), skill.name
