"""Candidate prompts: the critic's rewrite and few-shot edits from the tuning cases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alina.config import ORCHESTRATOR
from alina.meta_prompts._prompts import PROTECTED_HEADER, Prompt, compose, split_protected
from alina.meta_prompts.evals import Case
from alina.team.review._parse import CriticReply
from alina.team.review._report import Origin

EXAMPLES_HEADER = "Examples of good replies:"


@dataclass(frozen=True)
class Candidate:
    system: str
    """The full system text (protected section included)."""
    summary: str
    origin: Origin
    cause: str = ""


def candidate_from_reply(current: Prompt, reply: CriticReply) -> Candidate:
    """The critic writes the instructions only; the protected section is appended unchanged.
    A reply that carries the protected header itself is taken whole (the guard then checks it)."""
    text = reply.prompt if PROTECTED_HEADER in reply.prompt else compose(reply.prompt, current.protected)
    return Candidate(text, reply.summary, "critic", reply.cause)


def _plain(text: str, limit: int) -> str:
    """One line, no braces (a prompt is a template), cut at a word."""
    flat = " ".join(str(text).replace("{", "(").replace("}", ")").split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _example(agent: str, case: Case) -> str | None:
    ref = case.reference
    if ref is None:
        return None
    if agent == ORCHESTRATOR:
        reports = " | ".join(f"{r.source}: {r.content}" for r in case.reports)
        task, said, answer = _plain(case.task, 120), _plain(reports, 220), _plain(ref, 240)
        return f'- Request: "{task}" Reports: {said} Answer: {answer}'
    if isinstance(ref, Mapping) and ref.get("tool"):
        args = ", ".join(f"{k}={v}" for k, v in (ref.get("args") or {}).items())
        return f'- Request: "{_plain(case.task, 120)}" Call {ref["tool"]}' + (
            f" with {_plain(args, 120)}." if args else "."
        )
    return None


def fewshot_candidates(
    agent: str, current: Prompt, tune: Sequence[Case], failing: Sequence[Case], *, n: int, k: int
) -> list[Candidate]:
    """``n`` candidates that add (or swap) ``k`` worked examples from the tuning cases' reference
    outputs at the end of the instructions: failing cases first, then the others, each candidate
    taking the next ``k`` not already shown (DSPy-bootstrap style: demonstrations, no critic)."""
    body, _ = split_protected(current.system)
    base, had = body, ""
    if EXAMPLES_HEADER in body:
        base, had = body.split(EXAMPLES_HEADER, 1)
        base = base.strip()
    pool = [c for c in [*failing, *[c for c in tune if c not in failing]] if _example(agent, c)]
    pool = [c for c in pool if f'"{_plain(c.task, 120)}"' not in had]
    out: list[Candidate] = []
    for i in range(n):
        chosen = pool[i * k : (i + 1) * k]
        if not chosen:
            break
        lines = [e for c in chosen if (e := _example(agent, c))]
        text = compose(f"{base}\n{EXAMPLES_HEADER}\n" + "\n".join(lines), current.protected)
        verb = "swap examples for" if had else "add examples"
        out.append(Candidate(text, f"few-shot: {verb} {', '.join(c.id for c in chosen)}", "fewshot"))
    return out
