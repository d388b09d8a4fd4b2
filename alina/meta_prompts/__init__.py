"""Prompts are data: versioned YAML files under ``prompts/``, rendered strictly.

Each file holds ``name``, ``version`` (an integer, bumped on every change), ``description``
(what the router shows about the agent) and ``system`` (the system prompt template). Templates
use ``{variable}`` placeholders; rendering with a missing variable is an error, never an empty
string. The optimizer's critic loop writes new versions; the checkpoint records which version
each agent ran with.

A file may hold a ``protected`` section (risk rules, tool permissions, output contract) and its
``protected_sha256``: the section is always the end of the system prompt, under
:data:`PROTECTED_HEADER`, and :func:`check_candidate` refuses a revision that changes it. The
versions in use live in Postgres (:class:`alina.memory_store.prompts.PromptVersions`).

The routing role of an agent is data here too: ``reports`` (the :data:`REPORT_DOMAINS` whose
conditions its report decides), ``scores_others`` and ``side_effects`` (see :class:`Prompt`).
"""

from alina.meta_prompts._prompts import (
    PROTECTED_HEADER,
    REPORT_DOMAINS,
    Prompt,
    PromptError,
    compose,
    load_prompt,
    prompt_names,
    protected_hash,
    split_protected,
    system_digest,
)
from alina.meta_prompts.guard import check_candidate

__all__ = [
    "PROTECTED_HEADER",
    "REPORT_DOMAINS",
    "Prompt",
    "PromptError",
    "check_candidate",
    "compose",
    "load_prompt",
    "prompt_names",
    "protected_hash",
    "split_protected",
    "system_digest",
]
