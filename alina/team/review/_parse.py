"""The critic's meta-prompt (``critic.yaml``) and the parsing of its reply."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from autogen_core.models import LLMMessage, SystemMessage, UserMessage
from pydantic import BaseModel

from alina.meta_prompts._prompts import Prompt, split_protected
from alina.meta_prompts.evals import Case
from alina.team.review._report import ReviewError

CRITIC_FILE = Path(__file__).resolve().parents[2] / "meta_prompts" / "critic.yaml"


class CriticOutputError(ValueError):
    """The critic's reply holds no usable prompt (the message says why)."""


@dataclass(frozen=True)
class CriticReply:
    prompt: str
    summary: str
    cause: str


class _CriticSchema(BaseModel):
    cause: str
    summary: str
    prompt: str


_FENCE = re.compile(r"```([a-zA-Z]*)\s*\n(.*?)```", re.DOTALL)
_PROMPT_KEYS = ("prompt", "instructions", "system", "new_prompt", "system_prompt")


def _from_mapping(data: Any) -> CriticReply | None:
    if not isinstance(data, dict):
        return None
    prompt = next((data[k] for k in _PROMPT_KEYS if isinstance(data.get(k), str) and data[k].strip()), None)
    if prompt is None:
        return None
    summary = str(data.get("summary") or "").strip() or "critic rewrite"
    return CriticReply(
        prompt.strip(), " ".join(summary.split())[:200], str(data.get("cause") or "").strip()[:300]
    )


def parse_critic(text: str, finish_reason: str = "stop") -> CriticReply:
    """The prompt in the critic's reply: a JSON object (bare, fenced or embedded in prose) with
    ``prompt`` (or ``instructions``/``system``), or else a fenced text block. Raises
    :class:`CriticOutputError` with the reason for a cut-off, empty or unusable reply; never
    anything else."""
    raw = (text or "").strip()
    if finish_reason == "length":
        raise CriticOutputError(
            f"truncated: the critic's reply was cut off at its token limit ({raw[-60:]!r})"
        )
    if not raw:
        raise CriticOutputError("empty: the critic replied nothing")
    attempts = [raw] + [body for _, body in _FENCE.findall(raw)]
    start, end = raw.find("{"), raw.rfind("}")
    if 0 <= start < end:
        attempts.append(raw[start : end + 1])
    for chunk in attempts:
        try:
            reply = _from_mapping(json.loads(chunk))
        except (json.JSONDecodeError, RecursionError):
            continue
        if reply is not None:
            return reply
    fenced = [body.strip() for lang, body in _FENCE.findall(raw) if lang.lower() != "json" and body.strip()]
    if fenced:
        return CriticReply(fenced[0], "critic rewrite (fenced text)", "")
    if raw.startswith("{"):
        raise CriticOutputError(f"garbled: not valid JSON and no prompt in it ({raw[:80]!r})")
    raise CriticOutputError(
        f"no prompt: neither a JSON object with a prompt nor a fenced block ({raw[:80]!r})"
    )


@lru_cache(maxsize=4)
def _critic_template(path: Path = CRITIC_FILE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"version", "system", "user"} <= set(data):
        raise ReviewError(f"{path}: the meta-prompt needs version, system and user")
    return data


def critic_messages(
    agent: str, current: Prompt, failures: Sequence[tuple[Case, Any, list[str]]], rejected: Sequence[Any]
) -> list[LLMMessage]:
    """The meta-prompt filled for ``agent``: its rewritable body, its protected rules (read only),
    up to 4 failed tuning cases with the findings, and the rejected edits (hash + summary)."""
    t = _critic_template()
    body, protected = split_protected(current.system)
    shown = []
    for case, output, findings in list(failures)[:4]:
        out = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
        shown.append(
            f"- task: {case.task}\n  output: {out[:300]}\n  failed checks: {', '.join(findings) or 'none'}"
        )
    rej = [f"- {r.digest}: {r.summary} (rejected: {r.reason[:120]})" for r in list(rejected)[:8]]
    user = t["user"].format(
        agent=agent,
        body=body,
        protected=protected or "(none)",
        failures="\n".join(shown) or "(no failed case)",
        rejected="\n".join(rej) or "(none yet)",
    )
    return [SystemMessage(content=t["system"].format()), UserMessage(content=user, source="user")]
