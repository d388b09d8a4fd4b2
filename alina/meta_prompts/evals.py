"""The frozen evaluation sets of the agents and the per-case score the promotion gate compares.

A set is ``evals/AGENT.jsonl`` (alina, trader, monitor, optimizer), written once by
:mod:`alina.meta_prompts._build_evals` from the real tools' output on the packaged data. Each
case is split ``tune`` (the critic may see it) or ``heldout`` (only the gate sees its scores).

:func:`score_case` is a pure function of the case and the agent's output (no model, no I/O), so
the gate can be tested without models:

* **alina** (output: the answer text): the mean of five checks — grounded, complete and
  consistent as :func:`alina.team._answers.check_answer` judges them against the case's
  reports; the share of the case's named facts (``expect.numbers``, ``expect.states``) the
  answer carries; and none of ``expect.must_not`` in it.
* **trader / monitor / optimizer** (output: ``{"tool", "args", "text"}`` — the tool called, its
  arguments and the report; a bare string is a report with no tool call): the mean of six
  checks — the expected tool; the share of ``expect.args`` matched; :func:`check_output`'s
  score of the text; the text grounded in the tool's output (``check_answer``'s grounded);
  the share of named facts carried; none of ``expect.must_not``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from alina.team._answers import _facts, _matches, _numbers, check_answer, check_output

__all__ = ["AGENTS", "EVALS_DIR", "Case", "Report", "load_eval_set", "score_case", "score_parts", "split"]

EVALS_DIR = Path(__file__).resolve().parent / "evals"
AGENTS = ("alina", "trader", "monitor", "optimizer")
Split = Literal["tune", "heldout"]


@dataclass(frozen=True)
class Report:
    """A message the case's agent answers from (a specialist's report, or a tool's output)."""

    source: str
    content: str
    type: str = "TextMessage"


@dataclass(frozen=True)
class Case:
    """One evaluation case: the task, what the agent works from, and what its output must show."""

    id: str
    split: Split
    task: str
    reports: tuple[Report, ...]
    expect: Mapping[str, Any]
    reference: Any = None
    """An output that meets every expectation (scores 1.0): proof the case is satisfiable."""
    extra: Mapping[str, Any] = field(default_factory=dict)


def load_eval_set(agent: str, which: Split | None = None, directory: Path = EVALS_DIR) -> list[Case]:
    """The cases of ``agent``'s set, in file order; only one split's when ``which`` is given.

    Raises ``ValueError`` for an agent without a set and for a malformed case (no id, an
    unknown split, a duplicate id), so a broken set fails loudly rather than scoring less.
    """
    path = directory / f"{agent}.jsonl"
    if not path.is_file():
        raise ValueError(f"no evaluation set for {agent!r} (known: {', '.join(AGENTS)})")
    cases, seen = [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        raw = json.loads(line)
        cid, sp = raw.get("id"), raw.get("split")
        if not cid or sp not in ("tune", "heldout") or cid in seen:
            raise ValueError(f"{path.name}:{n}: case needs a unique id and split tune|heldout")
        seen.add(cid)
        known = {"id", "split", "task", "reports", "expect", "reference"}
        cases.append(
            Case(
                id=cid,
                split=sp,
                task=raw["task"],
                reports=tuple(Report(r["source"], r["content"]) for r in raw.get("reports", [])),
                expect=raw.get("expect", {}),
                reference=raw.get("reference"),
                extra={k: v for k, v in raw.items() if k not in known},
            )
        )
    return [c for c in cases if which is None or c.split == which]


def split(cases: list[Case]) -> tuple[list[Case], list[Case]]:
    """(tune, heldout) of ``cases``, order kept."""
    return [c for c in cases if c.split == "tune"], [c for c in cases if c.split == "heldout"]


def _named_facts(text: str, expect: Mapping[str, Any]) -> float:
    """Share of the expected numbers (a rounding counts, as in check_answer) and states said."""
    said_numbers = _numbers(text)
    said_states = frozenset().union(*_facts([text]).states.values())
    wanted = 0
    got = 0
    for raw in expect.get("numbers", []):
        values = _numbers(str(raw))
        if not values:
            continue
        wanted += 1
        got += any(_matches(v, d, [values[0][0]]) for v, d in said_numbers)
    for state in expect.get("states", []):
        wanted += 1
        got += state in said_states or re.search(rf"\b{re.escape(state)}\b", text.lower()) is not None
    return got / wanted if wanted else 1.0


def _none_of(text: str, expect: Mapping[str, Any]) -> float:
    low = text.lower()
    return (
        0.0
        if any(re.search(rf"(?<!\w){re.escape(w.lower())}", low) for w in expect.get("must_not", []))
        else 1.0
    )


def _arg_matches(want: Any, got: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(got).strip().lower() == str(want).strip().lower()


def score_parts(agent: str, case: Case, output: Any) -> dict[str, float]:
    """The named checks :func:`score_case` averages (each in [0, 1]); the ones below 1 are the
    checker's findings the optimizer's critic is shown."""
    expect = case.expect
    if agent == "alina":
        text = output if isinstance(output, str) else str(output or "")
        check = check_answer(text, case.task, list(case.reports))
        return {
            "grounded": float(check.grounded),
            "complete": float(check.complete),
            "consistent": float(check.consistent),
            "named_facts": _named_facts(text, expect),
            "none_forbidden": _none_of(text, expect),
        }
    if isinstance(output, Mapping):
        tool, args, text = output.get("tool"), output.get("args") or {}, str(output.get("text") or "")
    else:
        tool, args, text = None, {}, str(output or "")
    right_tool = float(tool is not None and tool == expect.get("tool"))
    want_args = expect.get("args", {})
    if want_args:
        arg_share = sum(k in args and _arg_matches(v, args[k]) for k, v in want_args.items()) / len(want_args)
    else:
        arg_share = right_tool  # no arguments to get right: credit only the right call
    # a tool's output is the report the text must stay within (the task's figures count too)
    grounded = check_answer(text, case.task, list(case.reports)).grounded if text.strip() else False
    return {
        "right_tool": right_tool,
        "args": arg_share,
        "output_check": check_output(text, agent)[0],
        "grounded": float(grounded),
        "named_facts": _named_facts(text, expect),
        "none_forbidden": _none_of(text, expect),
    }


def score_case(agent: str, case: Case, output: Any) -> float:
    """The output's score on ``case`` in [0, 1] (see the module docstring for the checks).

    Deterministic and pure: the same case and output always give the same score.
    """
    parts = list(score_parts(agent, case, output).values())
    return float(sum(parts) / len(parts))
