"""The guard a rewritten prompt passes before anyone evaluates it (:func:`check_candidate`).

A candidate is the full system text an optimizer proposes for an agent. It is refused when it
is empty or truncated, was already tried, changes or drops the protected section (risk rules,
tool permissions, output contract), or tries to talk the agent out of its rules.
"""

from __future__ import annotations

import re
import string

from alina.meta_prompts._prompts import Prompt, protected_hash, split_protected, system_digest

__all__ = ["MIN_LENGTH_RATIO", "OVERRIDE_PATTERNS", "check_candidate"]

MIN_LENGTH_RATIO = 0.5
"""A candidate shorter than this share of the current text is taken as truncated."""

_ENDINGS = tuple(".!?:;)]\"'`*")
_PAIRS = {"(": ")", "[": "]", "{": "}"}
OVERRIDE_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        r"(?<!not )(?<!never )(?<!n't )\b(ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}"
        r"\b(previous|prior|above|earlier|preceding|other|all|any|your|the|system)\b[^.\n]{0,20}\b(instructions?|rules?|prompts?|"
        r"guidelines|limits?|constraints?)\b",
        r"\byou (may|can|are allowed to|are free to|should)\b[^.\n]{0,30}\b(change|edit|modify|rewrite|"
        r"adjust|relax|raise|lower|remove|ignore|redefine|update)\b[^.\n]{0,30}\b(rubric|evaluations?|"
        r"scor(e|es|ing)|risk limits?|limits|rules|protected|criteria)\b",
        r"\b(new|updated|real) (system )?(instructions|rules)\b\s*:",
        r"\bno (longer|more) (bound|restricted) by\b",
    )
)
"""Instruction-override phrases a candidate's rewritable part may not contain."""


def _unbalanced(text: str) -> str | None:
    """The first bracket that is not closed or not opened, if any."""
    stack: list[str] = []
    for ch in text:
        if ch in _PAIRS:
            stack.append(_PAIRS[ch])
        elif ch in _PAIRS.values():
            if not stack or stack.pop() != ch:
                return ch
    return stack[-1] if stack else None


def check_candidate(current: Prompt, candidate_system: str, tried_digests: set[str]) -> list[str]:
    """The problems of ``candidate_system`` as the next system text of ``current``'s agent; an
    empty list means the candidate may go on to evaluation. ``tried_digests``: the digests
    (:func:`~alina.meta_prompts._prompts.system_digest`) of every version already tried; the
    current text counts as tried too. Never raises for a bad candidate."""
    text = candidate_system.strip()
    if not text:
        return ["empty: the candidate has no text"]
    problems: list[str] = []
    if len(text) < MIN_LENGTH_RATIO * len(current.system):
        problems.append(
            f"truncated: {len(text)} characters against {len(current.system)} in v{current.version} "
            f"(under {MIN_LENGTH_RATIO:.0%})"
        )
    digest = system_digest(text)
    if digest in tried_digests or digest == current.digest:
        problems.append(f"already tried: the text is byte-identical to a tried version ({digest})")
    body, protected = split_protected(text)
    if current.protected:
        if protected is None:
            problems.append("protected section dropped: the fixed rules are missing")
        elif protected_hash(protected) != current.protected_hash:
            problems.append(
                f"protected section changed: hash {protected_hash(protected)} != {current.protected_hash}"
            )
    if body and not body.endswith(_ENDINGS):
        problems.append(f"ends mid-sentence: ...{body[-40:]!r}")
    bad = _unbalanced(text)
    if bad is not None:
        problems.append(f"unbalanced brackets: {bad!r} has no partner")
    else:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        except ValueError as exc:
            problems.append(f"not a valid template: {exc}")
        else:
            known = {f for _, f, _, _ in string.Formatter().parse(current.system) if f}
            if fields - known:
                problems.append(f"unknown template variables: {sorted(fields - known)}")
    for pattern in OVERRIDE_PATTERNS:
        hit = pattern.search(body)
        if hit:
            problems.append(f"instruction override: {hit.group(0)!r}")
    return problems
