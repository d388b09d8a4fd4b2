"""Prompts are data: versioned YAML files under ``prompts/``, rendered strictly.

Each file holds ``name``, ``version`` (an integer, bumped on every change), ``description``
(what the router shows about the agent) and ``system`` (the system prompt template). Templates
use ``{variable}`` placeholders; rendering with a missing variable is an error, never an empty
string. The optimizer's critic loop (a later issue) writes new versions; the checkpoint records
which version each agent ran with.
"""

from alina.meta_prompts._prompts import Prompt, PromptError, load_prompt, prompt_names

__all__ = ["Prompt", "PromptError", "load_prompt", "prompt_names"]
