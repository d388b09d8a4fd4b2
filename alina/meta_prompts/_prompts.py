from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPT_DIR = Path(__file__).parent / "prompts"
_REQUIRED = ("name", "version", "description", "system")
_OPTIONAL = ("keywords", "examples")
_CLAIMS = "claims"
_ROLE = ("reports", "scores_others", "side_effects")
REPORT_DOMAINS = ("health", "trend")
"""What an agent's report can speak for: the states the router reads from reports and a task's
conditions name ("if the system is healthy", "unless it is a downtrend")."""
"""The agent's role in routing (see :class:`Prompt`): data, so a team's roles live in its prompt files."""
_PROTECTED = ("protected", "protected_sha256")
PROTECTED_HEADER = "Fixed rules (no revision of this prompt may change them):"
"""The line that starts a prompt's protected section; the section is always the end of ``system``."""
Claim = tuple[tuple[str, ...], ...]
"""One routing cue: groups of alternative words or phrases; a clause matches when it has one of
every group."""


class PromptError(Exception):
    """A prompt file is malformed or a template variable is missing (a developer must act)."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    description: str
    system: str
    keywords: tuple[str, ...] = ()
    """Lower-case words that route a task to this agent without a model call."""
    examples: tuple[str, ...] = ()
    """Typical requests this agent handles (the router's lexical scorer reads them)."""
    claims: tuple[Claim, ...] = ()
    """Cues for clauses this agent takes even when they name another agent or use its keywords
    (e.g. "rewrite the trader's prompt" is the optimizer's); ``<agent>`` stands for any agent's
    name. Lower-case."""
    reports: tuple[str, ...] = ()
    """The report domains this agent's report decides (``health``, ``trend``): a task's
    condition on one ("if the system is healthy") waits for this agent's report."""
    scores_others: bool = False
    """This agent scores what the others produce: it speaks after the producers (the agents
    with ``reports``) unless what it must score is given."""
    side_effects: bool = False
    """This agent acts on the world (orders): in safe mode a task that asks for an order never
    reaches it (the desk and the tool gate refuse in code anyway)."""
    protected: str = ""
    """The protected section (risk rules, tool permissions, output contract): always the end of
    ``system``, after :data:`PROTECTED_HEADER`; a candidate revision must keep it byte for byte."""

    @property
    def digest(self) -> str:
        """Short content hash: identifies the exact text a run used."""
        return system_digest(self.system)

    @property
    def protected_hash(self) -> str:
        """Hash of the protected section (the YAML stores it as ``protected_sha256``)."""
        return protected_hash(self.protected)

    @property
    def body(self) -> str:
        """``system`` without its protected section (the part a revision may rewrite)."""
        return split_protected(self.system)[0]

    def render(self, **variables: Any) -> str:
        """Fill the ``{name}`` placeholders; a placeholder without a value raises PromptError."""
        needed = {f for _, f, _, _ in string.Formatter().parse(self.system) if f}
        missing = sorted(needed - variables.keys())
        if missing:
            raise PromptError(f"prompt {self.name!r} v{self.version}: missing variables {missing}")
        return self.system.format(**variables)


def system_digest(system: str) -> str:
    """The short content hash of a system text (:attr:`Prompt.digest`)."""
    return hashlib.sha256(system.encode()).hexdigest()[:12]


def protected_hash(protected: str) -> str:
    """The hash of a protected section's text (first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(protected.strip().encode()).hexdigest()[:16]


def compose(body: str, protected: str) -> str:
    """The full system text: ``body``, then the protected section under :data:`PROTECTED_HEADER`
    (just ``body`` when there is no protected section)."""
    body, protected = body.strip(), protected.strip()
    return f"{body}\n\n{PROTECTED_HEADER}\n{protected}" if protected else body


def split_protected(system: str) -> tuple[str, str | None]:
    """``(body, protected)`` of a system text; ``protected`` is None when the header is absent.
    The header's last occurrence counts (the section is always the end of the text)."""
    at = system.rfind(PROTECTED_HEADER)
    if at < 0:
        return system.strip(), None
    return system[:at].strip(), system[at + len(PROTECTED_HEADER) :].strip()


def prompt_names() -> set[str]:
    """Names of the prompt files that exist."""
    return {p.stem for p in PROMPT_DIR.glob("*.yaml")}


@lru_cache(maxsize=64)
def load_prompt(name: str) -> Prompt:
    """Load ``prompts/NAME.yaml``; raise PromptError naming the file and the problem."""
    path = PROMPT_DIR / f"{name}.yaml"
    if not path.is_file():
        raise PromptError(f"{path}: no such prompt file; known: {sorted(prompt_names())}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PromptError(f"{path}: must be a mapping")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise PromptError(f"{path}: missing keys {missing}")
    unknown = sorted(set(data) - {*_REQUIRED, *_OPTIONAL, _CLAIMS, *_ROLE, *_PROTECTED})
    if unknown:
        raise PromptError(f"{path}: unknown keys {unknown}")
    if data["name"] != name:
        raise PromptError(f"{path}: name {data['name']!r} does not match the file name")
    if not isinstance(data["version"], int) or data["version"] < 1:
        raise PromptError(f"{path}: version must be a positive integer (got {data['version']!r})")
    for key in _OPTIONAL:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise PromptError(f"{path}: {key} must be a list of non-empty strings (got {value!r:.80})")
    claims = _claims(path, data.get(_CLAIMS, []))
    reports = data.get("reports", [])
    if not isinstance(reports, list) or not all(isinstance(v, str) and v.strip() for v in reports):
        raise PromptError(f"{path}: reports must be a list of report domains (got {reports!r:.80})")
    unknown_domains = sorted({r.strip().lower() for r in reports} - set(REPORT_DOMAINS))
    if unknown_domains:
        raise PromptError(
            f"{path}: reports names {unknown_domains}; report domains are {', '.join(REPORT_DOMAINS)}"
        )
    for key in ("scores_others", "side_effects"):
        if not isinstance(data.get(key, False), bool):
            raise PromptError(f"{path}: {key} must be true or false (got {data[key]!r:.80})")
    protected = _protected(path, data)
    body = str(data["system"]).strip()
    if PROTECTED_HEADER in body:
        raise PromptError(f"{path}: system must not contain the protected header {PROTECTED_HEADER!r}")
    return Prompt(
        name=name,
        version=data["version"],
        description=str(data["description"]).strip(),
        system=compose(body, protected),
        protected=protected,
        keywords=tuple(k.strip().lower() for k in data.get("keywords", ())),
        examples=tuple(e.strip() for e in data.get("examples", ())),
        claims=claims,
        reports=tuple(r.strip().lower() for r in reports),
        scores_others=data.get("scores_others", False),
        side_effects=data.get("side_effects", False),
    )


def _protected(path: Path, data: dict[str, Any]) -> str:
    """The ``protected`` text of a prompt file, checked against its stored ``protected_sha256``
    (an edit of the protected section must update the hash too: it is never changed by accident).
    Braces are refused: the section is never a template."""
    text, stored = data.get("protected"), data.get("protected_sha256")
    if text is None:
        if stored is not None:
            raise PromptError(f"{path}: protected_sha256 without a protected section")
        return ""
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"{path}: protected must be non-empty text")
    if "{" in text or "}" in text:
        raise PromptError(f"{path}: protected must not contain braces (it is not a template)")
    if stored != protected_hash(text):
        raise PromptError(
            f"{path}: protected_sha256 is {stored!r} but the protected section hashes to "
            f"{protected_hash(text)!r}; update it only when the protected rules are meant to change"
        )
    return text.strip()


def _claims(path: Path, value: Any) -> tuple[Claim, ...]:
    """The ``claims`` of a prompt file, lower-cased: a list of cues, each a non-empty list of groups,
    each a non-empty list of non-empty strings; raise PromptError naming the first bad cue."""
    if not isinstance(value, list):
        raise PromptError(f"{path}: claims must be a list of cues (got {value!r:.80})")
    out = []
    for i, cue in enumerate(value):
        ok = (
            isinstance(cue, list)
            and bool(cue)
            and all(
                isinstance(g, list) and g and all(isinstance(w, str) and w.strip() for w in g) for g in cue
            )
        )
        if not ok:
            raise PromptError(
                f"{path}: claims[{i}] must be a list of groups, each a list of non-empty strings "
                f"(got {cue!r:.80})"
            )
        out.append(tuple(tuple(" ".join(w.lower().split()) for w in g) for g in cue))
    return tuple(out)
