"""The toolloader: discovery, the declaration contract, broken plugins, allow-list, reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from autogen_core.tools import FunctionTool

from alina.agents import tools_for, tools_for_agent
from alina.monitoring.metrics import REGISTRY
from alina.skills import loader as loader_mod
from alina.skills.bindings import SkillBindings, bind_skills
from alina.skills.loader import SkillDeclarationError, SkillLoader, SkillRegistry, discover

from ._helpers import EXAMPLE_PLUGINS, call_tool, plugin_source

BUILTINS = ["get_price", "candle_summary", "system_health", "score_answer"]  # plugin "builtin"


# --------------------------------------------------------------------------- built-ins


def test_builtins_load_without_installed_entry_points() -> None:
    found = discover()
    assert [s.name for s in found.skills.values() if s.plugin == "builtin"] == BUILTINS
    assert list(found.skills)[:4] == BUILTINS  # loaded first
    assert found.problems == [] and found.disabled == []
    assert {s.source for s in found.skills.values()} == {"builtin"}
    assert {s.plugin for s in found.skills.values()} == set(loader_mod.BUILTIN_PLUGINS)
    assert found.skills["get_price"].agents == ("trader",)
    assert found.skills["system_health"].side_effects is False


@pytest.mark.parametrize("agent", ["trader", "monitor", "optimizer", "alina", "nobody"])
def test_tools_match_the_builtin_tool_builder(agent: str) -> None:
    """Same names, descriptions and argument schemas as ``agents.tools_for`` (the built-ins unguarded)."""
    new, old = tools_for_agent(agent, SkillLoader()), tools_for(agent)
    assert all(isinstance(t, FunctionTool) for t in new)
    new = [t for t in new if t.name in BUILTINS]
    assert [t.schema for t in new] == [t.schema for t in old]


def test_installed_builtin_entry_points_are_not_loaded_twice(
    fake_dist: Callable[..., None], shipped: list[str]
) -> None:
    fake_dist("agentalina", dict(loader_mod.BUILTIN_PLUGINS))
    found = discover()
    assert list(found.skills) == shipped and found.problems == []


# --------------------------------------------------------------------------- sources


def test_folder_plugin_is_loaded_with_its_declaration() -> None:
    found = discover(EXAMPLE_PLUGINS)
    skill = found.skills["position_size"]
    assert (skill.source, skill.plugin, skill.agents, skill.timeout_s) == (
        "folder",
        "position_sizing",
        ("trader",),
        2,
    )
    assert skill.origin.endswith("position_sizing.py")
    assert skill.description.startswith("Size a position")
    props = skill.parameters()["properties"]
    assert props["equity"]["type"] == "number" and "Account equity" in props["equity"]["description"]
    assert skill.parameters()["required"] == ["equity"]


def test_folder_plugin_becomes_a_working_tool_for_its_agents_only() -> None:
    loader = SkillLoader(EXAMPLE_PLUGINS)
    names = [t.name for t in tools_for_agent("trader", loader)]
    assert names[:2] == ["get_price", "candle_summary"] and names[-1] == "position_size"
    assert "position_size" not in [t.name for t in tools_for_agent("monitor", loader)]
    tool = tools_for_agent("trader", loader)[-1]
    assert call_tool(tool, {"equity": 10000, "risk_pct": 1, "stop_distance_pct": 2}).startswith(
        "position notional 5000.00"
    )
    labels = {"agent": "trader", "tool": "position_size", "outcome": "ok"}
    assert (
        REGISTRY.get_sample_value("alina_tool_calls_total", labels) or 0
    ) >= 1  # instrument() still counts


def test_entry_point_plugins_by_module_or_function(
    fake_dist: Callable[..., None], shipped: list[str]
) -> None:
    fake_dist(
        "extras",
        {"zeta": "ep_plugin_zeta", "alpha": "ep_plugin_alpha:hook"},
        {
            "ep_plugin_zeta": plugin_source("zeta_tool"),
            "ep_plugin_alpha": plugin_source("alpha_tool").replace("def register(", "def hook("),
        },
    )
    found = discover(EXAMPLE_PLUGINS)
    # builtin first, then entry points by entry-point name, then the folder
    assert list(found.skills) == [*shipped, "alpha_tool", "zeta_tool", "position_size"]
    assert found.skills["alpha_tool"].source == "entry point"
    assert found.skills["alpha_tool"].origin == "ep_plugin_alpha:hook"


def test_any_agent_wildcard(plugin_dir: Callable[..., Path]) -> None:
    d = plugin_dir({"shared.py": plugin_source("shared_tool", agents=("*",))})
    loader = SkillLoader(d)
    names = {a: [t.name for t in tools_for_agent(a, loader)] for a in ("trader", "alina", "x")}
    assert all("shared_tool" in n for n in names.values())


# --------------------------------------------------------------------------- broken plugins


BROKEN = {
    "a_import.py": "import module_that_does_not_exist_anywhere\n",
    "b_syntax.py": "def register(skills)\n",
    "c_raises.py": "def register(skills):\n    raise RuntimeError('boom')\n",
    "d_no_hook.py": "X = 1\n",
    "e_nested_arg.py": '''
        def bad(options: dict) -> str:
            """Take nested options.

            Args:
                options: Something nested.
            """
            return ""

        def register(skills):
            skills.add(bad, agents=["trader"])
        ''',
    "f_no_doc.py": """
        def nodoc(x: int) -> str:
            return ""

        def register(skills):
            skills.add(nodoc, agents=["trader"])
        """,
    "g_undocumented_arg.py": '''
        def half(x: int) -> str:
            """Half-documented."""
            return ""

        def register(skills):
            skills.add(half, agents=["trader"])
        ''',
    "h_duplicate.py": plugin_source("get_price"),
    "i_bad_timeout.py": plugin_source("slow_one").replace(
        "agents=['trader'])", "agents=['trader'], timeout_s=-1)"
    ),
    "j_bad_agents.py": plugin_source("nobody_tool", agents=()),
    "k_exits.py": "import sys\nsys.exit(3)\n",
    "l_empty.py": "def register(skills):\n    pass\n",
    "m_partial.py": plugin_source("partial_ok") + "\n\ndef register(skills):\n"
    "    skills.add(partial_ok, agents=['trader'])\n    skills.add(42, agents=['trader'])\n",
    "z_good.py": plugin_source("good_tool"),
}


def test_broken_plugins_are_reported_and_skipped(plugin_dir: Callable[..., Path], shipped: list[str]) -> None:
    found = discover(plugin_dir(BROKEN))
    errors = {p.plugin: p.error for p in found.problems}
    assert set(errors) == {Path(n).stem for n in BROKEN} - {"z_good"}
    assert "ModuleNotFoundError" in errors["a_import"]
    assert "SyntaxError" in errors["b_syntax"]
    assert errors["c_raises"] == "RuntimeError: boom"
    assert "no register(skills)" in errors["d_no_hook"]
    assert "bad declaration" in errors["e_nested_arg"] and "'options'" in errors["e_nested_arg"]
    assert "docstring" in errors["f_no_doc"]
    assert "'x' is not described" in errors["g_undocumented_arg"]
    assert "duplicate skill name 'get_price'" in errors["h_duplicate"] and "builtin" in errors["h_duplicate"]
    assert "timeout_s" in errors["i_bad_timeout"]
    assert "agents" in errors["j_bad_agents"]
    assert "SystemExit" in errors["k_exits"]
    assert "declared no skills" in errors["l_empty"]
    # a plugin loads whole or not at all
    assert "partial_ok" not in found.skills
    assert list(found.skills) == [*shipped, "good_tool"]
    assert all(p.source == "folder" and p.origin.endswith(".py") for p in found.problems)


def test_broken_entry_point_is_reported(fake_dist: Callable[..., None], shipped: list[str]) -> None:
    fake_dist(
        "broken",
        {"gone": "ep_plugin_missing_module", "attr": "ep_plugin_ok:nothing_here"},
        {"ep_plugin_ok": plugin_source("ep_ok")},
    )
    found = discover()
    errors = {p.plugin: p.error for p in found.problems}
    assert "ModuleNotFoundError" in errors["gone"]
    assert "AttributeError" in errors["attr"]
    assert list(found.skills) == shipped


def test_missing_plugin_folder_is_a_problem_not_a_crash(tmp_path: Path, shipped: list[str]) -> None:
    found = discover(tmp_path / "nope")
    assert list(found.skills) == shipped
    assert [p.error for p in found.problems] == ["plugin folder does not exist"]


def test_private_files_in_the_folder_are_ignored(plugin_dir: Callable[..., Path]) -> None:
    found = discover(plugin_dir({"_helpers.py": "raise RuntimeError('not a plugin')\n"}))
    assert found.problems == []


def test_declaration_errors_name_the_problem() -> None:
    def nested(x: list[int]) -> str:
        """Nested.

        Args:
            x: numbers.
        """
        return ""

    def ok(x: int | None = None, mode: str = "a") -> str:
        """Fine.

        Args:
            x: A number.
            mode: A mode.
        """
        return ""

    reg = SkillRegistry()
    with pytest.raises(SkillDeclarationError, match="flat primitive"):
        reg.add(nested, agents=["trader"])
    reg.add(ok, agents="trader")  # a single agent name is accepted as a string
    with pytest.raises(SkillDeclarationError, match="declared twice"):
        reg.add(ok, agents=["trader"])
    assert reg.skills[0].agents == ("trader",)


# --------------------------------------------------------------------------- allow-list


def test_env_allow_list_limits_what_loads(monkeypatch: pytest.MonkeyPatch, shipped: list[str]) -> None:
    monkeypatch.setenv("ALINA_SKILLS", "get_price, position_size ,ghost")
    found = discover(EXAMPLE_PLUGINS, enabled=["system_health"])  # the variable wins over config
    assert list(found.skills) == ["get_price", "position_size"]
    assert [s.name for s in found.disabled] == [n for n in shipped if n != "get_price"]
    assert [(p.plugin, p.error) for p in found.problems] == [("ALINA_SKILLS", "names unknown skill 'ghost'")]
    assert [t.name for t in tools_for_agent("trader", SkillLoader(EXAMPLE_PLUGINS))] == [
        "get_price",
        "position_size",
    ]


def test_empty_env_allow_list_enables_nothing(monkeypatch: pytest.MonkeyPatch, shipped: list[str]) -> None:
    monkeypatch.setenv("ALINA_SKILLS", "")
    found = discover()
    assert found.skills == {} and [s.name for s in found.disabled] == shipped


def test_config_allow_list() -> None:
    found = discover(enabled=["score_answer"])
    assert list(found.skills) == ["score_answer"]


def test_from_config_reads_the_skills_section() -> None:
    class Section:
        plugin_dir = "tests/skills/plugins"  # relative to the project root
        enabled = None

    class Config:
        skills = Section()

    loader = SkillLoader.from_config(Config())
    assert loader.plugin_dir == EXAMPLE_PLUGINS
    assert "position_size" in loader.skillset.skills
    assert SkillLoader.from_config(object()).plugin_dir is None  # no skills section yet


# --------------------------------------------------------------------------- reload


def test_reload_rescans_without_restart(plugin_dir: Callable[..., Path]) -> None:
    d = plugin_dir({"one.py": plugin_source("one_tool", doc="First version.")})
    loader = SkillLoader(d)
    held = tools_for_agent("trader", loader)
    assert loader.skillset.skills["one_tool"].description == "First version."

    plugin_dir(
        {
            "one.py": plugin_source("one_tool", doc="Second version."),
            "two.py": plugin_source("two_tool"),
            "three.py": "raise ImportError('half-written file')\n",
        }
    )
    found = loader.reload()
    assert found.skills["one_tool"].description == "Second version."
    assert "two_tool" in found.skills
    assert [p.plugin for p in found.problems] == ["three"]
    assert [t.name for t in tools_for_agent("trader", loader)][-2:] == ["one_tool", "two_tool"]
    assert call_tool(held[-1], {"text": "x"}) == "one_tool:x"  # tools handed out earlier still work

    (d / "two.py").unlink()
    (d / "three.py").unlink()
    found = loader.reload()
    assert "two_tool" not in found.skills and found.problems == []


def test_reload_sees_a_newly_installed_entry_point(fake_dist: Callable[..., None]) -> None:
    loader = SkillLoader()
    assert "late_tool" not in loader.skillset.skills
    fake_dist("late", {"late": "ep_plugin_late"}, {"ep_plugin_late": plugin_source("late_tool")})
    assert "late_tool" in loader.reload().skills


def test_the_bound_loader_is_the_one_in_use(plugin_dir: Callable[..., Path]) -> None:
    d = plugin_dir({"mod.py": plugin_source("mod_tool", agents=("monitor",))})
    installed = loader_mod.default_loader()  # outside any application: the installed plugins
    with bind_skills(SkillBindings(loader=SkillLoader(d))):
        assert [t.name for t in tools_for_agent("monitor")][-1] == "mod_tool"
        (d / "mod.py").unlink()
        assert "mod_tool" not in loader_mod.reload().skills
        assert "mod_tool" not in [t.name for t in tools_for_agent("monitor")]
    assert loader_mod.default_loader() is installed and "mod_tool" not in installed.skillset.skills
