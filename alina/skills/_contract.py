"""The skill plugin contract: one screen.

A plugin is a module (found through the ``alina.skills`` entry-point group, or a ``*.py`` file
in the folder named by ``skills.plugin_dir``) with one hook function::

    def register(skills: SkillRegistry) -> None:
        skills.add(funding_rate, agents=["trader"], timeout_s=5)

``add`` declares a plain function as a :class:`Skill`. The function's first docstring line is
the tool description, its type hints and ``Args:`` docstring lines are the argument schema;
arguments must be flat primitives (str, int, float, bool, Literal, or ``X | None`` of those),
each documented. A bad declaration raises :class:`SkillDeclarationError`, and the loader then
skips the whole plugin and reports why. The built-in skills register through the same hook.

A skill returns text for the model; it may return a :class:`ToolOutput` instead, the same text
with structured ``data`` that the team's memory reads its facts from (never the prose). Keys the
memory understands: ``symbol`` (the trading pair the result is about), ``verdict`` and
``alerts`` (a health check: ``[{"name": ..., "reason": ...}]``), ``order`` (what an order tool did).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from alina.skills._schema import description_of, parameters_schema, parse_args_doc

__all__ = [
    "ANY_AGENT",
    "DEFAULT_TIMEOUT_S",
    "Skill",
    "SkillDeclarationError",
    "SkillRegistry",
    "ToolOutput",
]

ANY_AGENT = "*"
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 600.0
Source = Literal["builtin", "entry point", "folder"]
_PRIMITIVES = (str, int, float, bool)


class ToolOutput(str):
    """A skill's result: the text the model reads (this string itself) and ``data``, the same
    result as structured values (JSON-compatible) that facts are read from. Being a ``str``, it
    goes wherever text goes; the tool guard hands the model the text and records the data."""

    data: Mapping[str, Any]

    def __new__(cls, text: str, data: Mapping[str, Any]) -> ToolOutput:
        out = super().__new__(cls, text)
        out.data = types.MappingProxyType(dict(data))
        return out

    def __reduce__(self) -> tuple[Any, ...]:  # copy/pickle keep the data
        return (ToolOutput, (str(self), dict(self.data)))


class SkillDeclarationError(ValueError):
    """A plugin declared a skill wrongly; the plugin's author must fix it (the plugin is skipped)."""


@dataclass(frozen=True)
class Skill:
    """One declared skill: what it is, who may call it, and how long a call may take."""

    name: str
    description: str
    func: Callable[..., Any] = field(repr=False, compare=False)
    agents: tuple[str, ...]
    """Agents allowed to use it; ``("*",)`` means every agent."""
    side_effects: bool = False
    """True when a call changes something outside the process (places an order, writes a file)."""
    timeout_s: float = DEFAULT_TIMEOUT_S
    plugin: str = ""
    """Name of the plugin that registered it (entry-point name or file stem)."""
    source: Source = "builtin"
    origin: str = ""
    """Where the plugin came from: ``module:function`` or the plugin file's path."""

    def allowed_for(self, agent: str) -> bool:
        """Whether ``agent`` may use this skill."""
        return ANY_AGENT in self.agents or agent in self.agents

    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as the model sees it (built like the agents' tools)."""
        return parameters_schema(self.func)


class SkillRegistry:
    """What a plugin's ``register`` hook receives; collects that plugin's declared skills."""

    def __init__(self, plugin: str = "", source: Source = "builtin", origin: str = "") -> None:
        self.plugin, self.source, self.origin = plugin, source, origin
        self.skills: list[Skill] = []

    def add(
        self,
        func: Callable[..., Any],
        *,
        agents: Iterable[str],
        side_effects: bool = False,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        name: str | None = None,
    ) -> Skill:
        """Declare ``func`` as a skill for ``agents``; raises :class:`SkillDeclarationError`."""
        skill = Skill(
            name=name or str(getattr(func, "__name__", "")),
            description=description_of(func) if inspect.getdoc(func) else "",
            func=func,
            agents=(agents,) if isinstance(agents, str) else tuple(agents),
            side_effects=side_effects,
            timeout_s=timeout_s,
            plugin=self.plugin,
            source=self.source,
            origin=self.origin,
        )
        _check(skill)
        if any(s.name == skill.name for s in self.skills):
            raise SkillDeclarationError(f"skill {skill.name!r} is declared twice by this plugin")
        self.skills.append(skill)
        return skill


def _check(skill: Skill) -> None:
    """Raise :class:`SkillDeclarationError` naming the first problem of the declaration."""
    where = f"skill {skill.name!r}"
    if not callable(skill.func) or not skill.name.isidentifier():
        raise SkillDeclarationError(f"{where}: needs a function with an identifier name")
    if not skill.description:
        raise SkillDeclarationError(
            f"{where}: the function needs a docstring (its first line is the description)"
        )
    if not skill.agents or not all(a == ANY_AGENT or a.isidentifier() for a in skill.agents):
        raise SkillDeclarationError(
            f"{where}: agents must be agent names or '*' (got {list(skill.agents)!r})"
        )
    if not isinstance(skill.side_effects, bool):
        raise SkillDeclarationError(
            f"{where}: side_effects must be True or False (got {skill.side_effects!r})"
        )
    if (
        isinstance(skill.timeout_s, bool)
        or not isinstance(skill.timeout_s, int | float)
        or not (0 < skill.timeout_s <= MAX_TIMEOUT_S)
    ):
        raise SkillDeclarationError(
            f"{where}: timeout_s must be in (0, {MAX_TIMEOUT_S:g}] (got {skill.timeout_s!r})"
        )
    try:
        hints = typing.get_type_hints(skill.func)
    except Exception as exc:  # any failure to resolve a hint is the author's to fix
        raise SkillDeclarationError(f"{where}: cannot resolve type hints ({exc})") from exc
    docs = parse_args_doc(skill.func)
    for p in inspect.signature(skill.func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise SkillDeclarationError(f"{where}: argument {p.name!r} must be a plain named argument")
        if p.name not in hints or not _is_flat(hints[p.name]):
            raise SkillDeclarationError(
                f"{where}: argument {p.name!r} needs a flat primitive type hint "
                f"(str, int, float, bool, Literal or X | None; got {hints.get(p.name, 'none')!r})"
            )
        if p.name not in docs:
            raise SkillDeclarationError(
                f"{where}: argument {p.name!r} is not described in the 'Args:' docstring"
            )


def _is_flat(tp: Any) -> bool:
    if tp in _PRIMITIVES:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return all(isinstance(a, _PRIMITIVES) for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return len(rest) == 1 and _is_flat(rest[0])
    return False
