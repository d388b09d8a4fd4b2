"""How a plain function becomes a tool: its description, its documented arguments, and the
timing wrapper every call goes through. No agent framework here: :mod:`alina.agents` wraps the
result for AutoGen."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Annotated, Any

import docstring_parser

from alina.monitoring.metrics import observe_tool_call

__all__ = ["ERROR_PREFIX", "description_of", "instrument", "parse_args_doc"]

ERROR_PREFIX = "error:"
"""A tool reports a failure the model should read as a string starting with this."""


def description_of(func: Callable[..., Any]) -> str:
    """First line of the function's docstring (the tool description)."""
    doc = inspect.getdoc(func) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else func.__name__


def parse_args_doc(func: Callable[..., Any]) -> dict[str, str]:
    """Map parameter names to their descriptions from a Google-style ``Args:`` section (parsed
    by ``docstring_parser``; a description's lines joined by single spaces)."""
    doc = docstring_parser.parse(inspect.getdoc(func) or "", style=docstring_parser.DocstringStyle.GOOGLE)
    return {p.arg_name: " ".join((p.description or "").split()) for p in doc.params}


def instrument(func: Callable[..., Any], agent: str) -> Callable[..., Any]:
    """Wrap ``func`` so each call is timed and recorded via ``observe_tool_call``.

    Outcome is ``error`` when the call raises (the exception propagates) or returns a string
    starting with ``error:``, else ``ok``. The wrapper keeps the signature (functools.wraps)
    and its annotations become ``Annotated[type, <Args: description>]``, which is where
    AutoGen's ``FunctionTool`` takes parameter descriptions from.
    """
    hints = inspect.get_annotations(func, eval_str=True)
    docs = parse_args_doc(func)
    tool = func.__name__

    def _outcome(result: Any) -> str:
        return "error" if isinstance(result, str) and result.startswith(ERROR_PREFIX) else "ok"

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0, outcome = time.perf_counter(), "error"
            try:
                result = await func(*args, **kwargs)
                outcome = _outcome(result)
                return result
            finally:
                observe_tool_call(agent, tool, time.perf_counter() - t0, outcome)

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0, outcome = time.perf_counter(), "error"
            try:
                result = func(*args, **kwargs)
                outcome = _outcome(result)
                return result
            finally:
                observe_tool_call(agent, tool, time.perf_counter() - t0, outcome)

    wrapper.__annotations__ = {
        name: (Annotated[hint, docs[name]] if name in docs and name != "return" else hint)
        for name, hint in hints.items()
    }
    return wrapper


def parameters_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of ``func``'s arguments as a model sees it: one property per parameter,
    its description from the ``Args:`` docstring line (else its name), required unless it has a
    default. The same schema AutoGen's ``FunctionTool`` builds (a test keeps the two equal)."""
    from pydantic import Field, create_model
    from pydantic_core import PydanticUndefined

    hints = inspect.get_annotations(func, eval_str=True)
    docs = parse_args_doc(func)
    fields: dict[str, Any] = {}
    for name, param in inspect.signature(func).parameters.items():
        if name == "cancellation_token":
            continue
        default = param.default if param.default is not inspect.Parameter.empty else PydanticUndefined
        fields[name] = (hints[name], Field(default=default, description=docs.get(name) or name))
    model: type[Any] = create_model(f"{func.__name__}args", **fields)
    js: dict[str, Any] = model.model_json_schema()
    return {
        "type": "object",
        "properties": js["properties"],
        "required": js.get("required", []),
        "additionalProperties": js.get("additionalProperties", False),
    }
