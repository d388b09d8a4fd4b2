"""The toolloader: find skill plugins, declare their skills, and build AutoGen tools per agent.

Plugins come from three places, loaded in this order (the first to claim a name keeps it):

1. the plugins shipped in this package, :data:`BUILTIN_PLUGINS` (also published as entry points
   of the same names, which are recognised and not loaded twice), so the built-ins load even
   when the package's entry points are not installed;
2. the ``alina.skills`` entry-point group, sorted by entry-point name;
3. the ``*.py`` files of the plugin folder (``skills.plugin_dir``), sorted by file name.

A plugin that fails to import, whose ``register`` raises, that declares a skill wrongly or
reuses a taken name is skipped as a whole and listed in :attr:`SkillSet.problems`; the rest
load. ``ALINA_SKILLS=a,b`` (or ``skills.enabled`` in the config; the variable wins) keeps only
the named skills. :meth:`SkillLoader.reload` re-scans everything without a restart.

Each tool call runs under the skill's timeout (a late call answers ``error: ... timed out``;
a synchronous function runs in its own daemon thread, which Python cannot kill, so it finishes
in the background), is timed into the metrics by :func:`alina.skills.builtin.instrument`, and
is recorded, arguments masked, by the configured :class:`~alina.skills.recorder.ToolCallRecorder`
(the wrapper, :func:`guarded`, lives in ``skills/_guard.py`` and is re-exported here).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alina._errors import error_line
from alina.skills._contract import Skill, SkillDeclarationError, SkillRegistry, Source
from alina.skills._guard import SIDE_EFFECTS_REFUSED, guarded, side_effect_refusal
from alina.skills.bindings import current_bindings
from alina.skills.builtin import BUILTIN_SKILLS
from alina.skills.recorder import ToolCallRecorder

__all__ = [
    "ENTRY_POINT_GROUP",
    "BUILTIN_PLUGINS",
    "ENV_ALLOW",
    "PluginProblem",
    "SIDE_EFFECTS_REFUSED",
    "Skill",
    "SkillDeclarationError",
    "SkillRegistry",
    "SkillLoader",
    "SkillSet",
    "default_loader",
    "discover",
    "guarded",
    "register_builtin",
    "reload",
    "side_effect_refusal",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "alina.skills"
ENV_ALLOW = "ALINA_SKILLS"
FOLDER_MODULE_PREFIX = "alina_skill_plugins"
BUILTIN_PLUGINS: dict[str, str] = {
    "builtin": "alina.skills.loader:register_builtin",
    "trading": "alina.skills.trading",
}
"""The package's own plugins, as entry-point values (``module`` or ``module:function``)."""
_BUILTIN_TIMEOUTS_S = {"get_price": 5.0, "candle_summary": 10.0, "system_health": 5.0, "score_answer": 5.0}


def register_builtin(skills: SkillRegistry) -> None:
    """The built-in plugin: the trader, monitor and optimizer tools of ``alina.skills.builtin``."""
    for agent, funcs in BUILTIN_SKILLS.items():
        for func in funcs:
            skills.add(func, agents=[agent], timeout_s=_BUILTIN_TIMEOUTS_S.get(func.__name__, 10.0))


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that was skipped (or an allow-list entry that names nothing), and why."""

    plugin: str
    source: str
    origin: str
    error: str


@dataclass
class SkillSet:
    """The outcome of one scan: usable skills (in load order), disabled ones, and problems."""

    skills: dict[str, Skill] = field(default_factory=dict)
    disabled: list[Skill] = field(default_factory=list)
    """Skills that loaded but are not in the allow-list."""
    problems: list[PluginProblem] = field(default_factory=list)

    def for_agent(self, agent: str) -> list[Skill]:
        """The skills ``agent`` may use, in load order."""
        return [s for s in self.skills.values() if s.allowed_for(agent)]


@dataclass(frozen=True)
class _Candidate:
    plugin: str
    source: Source
    origin: str
    load: Callable[[], Any]
    """Returns the plugin module or its register function (may raise anything)."""


def discover(
    plugin_dir: str | Path | None = None,
    *,
    enabled: Collection[str] | None = None,
    group: str = ENTRY_POINT_GROUP,
    environ: Mapping[str, str] | None = None,
) -> SkillSet:
    """Scan built-ins, entry points and ``plugin_dir``; never raises for a broken plugin.

    ``enabled`` is the allow-list of skill names (None = all); ``$ALINA_SKILLS`` in ``environ``
    (default ``os.environ``) replaces it when set (an empty value enables nothing).
    """
    env = os.environ if environ is None else environ
    allow = _parse_allow(env[ENV_ALLOW]) if ENV_ALLOW in env else (None if enabled is None else list(enabled))
    result = SkillSet()
    loaded: list[Skill] = []
    for cand in _candidates(group, plugin_dir, result.problems):
        skills, error = _load_plugin(cand, {s.name: s for s in loaded})
        if error:
            result.problems.append(PluginProblem(cand.plugin, cand.source, cand.origin, error))
            logger.warning("skill plugin %r (%s) skipped: %s", cand.plugin, cand.origin, error)
        loaded.extend(skills)
    for skill in loaded:
        if allow is None or skill.name in allow:
            result.skills[skill.name] = skill
        else:
            result.disabled.append(skill)
    where = ENV_ALLOW if ENV_ALLOW in env else "skills.enabled"
    for name in allow or []:
        if name not in result.skills:
            result.problems.append(PluginProblem(where, "allow-list", where, f"names unknown skill {name!r}"))
    return result


def _parse_allow(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def _candidates(
    group: str, plugin_dir: str | Path | None, problems: list[PluginProblem]
) -> Iterator[_Candidate]:
    for name, value in BUILTIN_PLUGINS.items():
        yield _Candidate(name, "builtin", value, functools.partial(_load_reference, value))
    try:
        eps = sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name)
    except Exception as exc:  # a corrupt installed distribution must not stop the others
        problems.append(PluginProblem("(entry points)", "entry point", group, error_line(exc)))
        eps = []
    shipped = {v.replace(" ", "") for v in BUILTIN_PLUGINS.values()}
    for ep in eps:
        if ep.value.replace(" ", "") not in shipped:  # the package's own: loaded above
            yield _Candidate(ep.name, "entry point", ep.value, ep.load)
    if plugin_dir is None:
        return
    folder = Path(plugin_dir)
    if not folder.is_dir():
        problems.append(PluginProblem(str(folder), "folder", str(folder), "plugin folder does not exist"))
        return
    for path in sorted(folder.glob("*.py")):
        if not path.name.startswith("_"):
            yield _Candidate(path.stem, "folder", str(path), functools.partial(_import_file, path))


def _load_reference(value: str) -> Any:
    """Import ``module`` or ``module:attr.path`` (the entry-point value syntax)."""
    module_name, _, attrs = value.partition(":")
    obj: Any = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        obj = getattr(obj, attr)
    return obj


def _import_file(path: Path) -> types.ModuleType:
    """Execute a plugin file as a fresh module, from source (a reload always sees the new code)."""
    name = f"{FOLDER_MODULE_PREFIX}.{path.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses and typing look the module up by name
    try:
        exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)  # a plugin file
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _load_plugin(cand: _Candidate, taken: dict[str, Skill]) -> tuple[list[Skill], str]:
    """Run one plugin's hook; all of its skills, or none and the reason."""
    try:
        obj = cand.load()
        hook = getattr(obj, "register", None) if isinstance(obj, types.ModuleType) else obj
        if not callable(hook):
            return [], "has no register(skills) function"
        registry = SkillRegistry(cand.plugin, cand.source, cand.origin)
        hook(registry)
    except SkillDeclarationError as exc:
        return [], f"bad declaration: {exc}"
    except (Exception, SystemExit) as exc:  # a broken plugin is reported, never fatal
        return [], error_line(exc)
    if not registry.skills:
        return [], "register(skills) declared no skills"
    for skill in registry.skills:
        if skill.name in taken:
            other = taken[skill.name]
            owner = f"{other.plugin!r}, {other.source}"
            return [], f"duplicate skill name {skill.name!r} (already registered by {owner})"
    return registry.skills, ""


class SkillLoader:
    """Holds the current :class:`SkillSet`; thread-safe :meth:`reload`; tools per agent."""

    def __init__(
        self,
        plugin_dir: str | Path | None = None,
        *,
        enabled: Collection[str] | None = None,
        recorder: ToolCallRecorder | None = None,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        """Configure the scan (nothing is loaded until first use or :meth:`reload`)."""
        self.plugin_dir = Path(plugin_dir) if plugin_dir is not None else None
        self.enabled = None if enabled is None else list(enabled)
        self.recorder = recorder
        self.group = group
        self._lock = threading.Lock()
        self._set: SkillSet | None = None

    @classmethod
    def from_config(cls, config: Any, *, recorder: ToolCallRecorder | None = None) -> SkillLoader:
        """A loader for ``config.skills`` (``plugin_dir`` relative to the project root, ``enabled``)."""
        from alina.config import project_root

        section = getattr(config, "skills", None)
        folder = getattr(section, "plugin_dir", None)
        path = (
            None
            if folder is None
            else (Path(folder) if Path(folder).is_absolute() else project_root() / folder)
        )
        return cls(path, enabled=getattr(section, "enabled", None), recorder=recorder)

    @property
    def skillset(self) -> SkillSet:
        """The current scan (performed on first access)."""
        with self._lock:
            if self._set is None:
                self._set = discover(self.plugin_dir, enabled=self.enabled, group=self.group)
            return self._set

    def reload(self) -> SkillSet:
        """Re-scan every source and swap the result in atomically; returns the new set.

        Tools already handed to agents keep working; new calls to ``alina.agents.tools_for_agent`` see
        the new set. Folder plugins are re-executed from their files; entry points are re-read
        (new and removed ones are noticed, already imported modules are not re-executed).
        """
        importlib.invalidate_caches()
        new = discover(self.plugin_dir, enabled=self.enabled, group=self.group)
        with self._lock:
            self._set = new
        return new

    def skills_for(self, agent: str) -> list[Skill]:
        """The skills ``agent`` may use, in load order."""
        return self.skillset.for_agent(agent)


def default_loader() -> SkillLoader:
    """The loader of the application in use (:mod:`alina.skills.bindings`), else one of the
    installed plugins (built-ins + entry points + ``$ALINA_SKILLS``), built once."""
    bound = current_bindings()
    if bound is not None and bound.loader is not None:
        return bound.loader
    return _installed_loader()


@functools.cache
def _installed_loader() -> SkillLoader:
    return SkillLoader()


def reload() -> SkillSet:
    """Re-scan the plugins of the loader in use (see :meth:`SkillLoader.reload`)."""
    return default_loader().reload()
