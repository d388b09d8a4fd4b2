"""Skills as guarded tools: the timeout, the side-effect refusal and the record of each call.

:func:`guarded` wraps a skill's function into the async function the agents call: it refuses a
side-effect skill when :func:`side_effect_refusal` says so (counted in
``alina_side_effects_refused_total``), runs the skill under its timeout (a synchronous function in
its own daemon thread), and records the call, arguments masked, with the given
:class:`~alina.skills.recorder.ToolCallRecorder`. Re-exported from :mod:`alina.skills.loader`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from alina._errors import error_line
from alina.monitoring.metrics import REGISTRY, safe_label
from alina.skills._contract import Skill, ToolOutput
from alina.skills._schema import ERROR_PREFIX
from alina.skills.context import current_run_context
from alina.skills.recorder import (
    Outcome,
    ToolCallRecord,
    ToolCallRecorder,
    current_call_id,
    current_run_id,
    mask_secrets,
    summarize_result,
)

__all__ = ["SIDE_EFFECTS_REFUSED", "guarded", "side_effect_refusal"]

logger = logging.getLogger("alina.skills.loader")  # the loader's log: records keep its name

_CANCEL_GRACE_S = 1.0
SIDE_EFFECTS_REFUSED = Counter(
    "alina_side_effects_refused_total",
    "Calls of side-effect skills refused in code (safe/halt mode, or not asked for by the user).",
    ["skill"],
    registry=REGISTRY,
)


def _run_in_thread(func: Callable[..., Any], kwargs: dict[str, Any], name: str) -> asyncio.Future[Any]:
    """Run ``func(**kwargs)`` in a new daemon thread; the future resolves on the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            outcome: tuple[Any, BaseException | None] = (context.run(func, **kwargs), None)
        except BaseException as exc:  # handed to the awaiting task
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop closed while the call ran past its timeout
            pass

    threading.Thread(target=work, name=f"skill-{name}", daemon=True).start()
    return future


def side_effect_refusal(skill: Skill) -> str | None:
    """Why ``skill`` may not run now, or None. Only skills that declare side effects are ever
    refused: inside a run, when the system mode forbids side effects (safe, halt), or when the
    user's own request asks for no order or other action (a model, a tool result or a recalled
    memory saying otherwise changes nothing). Outside a run (a notebook calling a skill
    directly) the skill's own checks apply (the desk refuses orders in safe mode)."""
    if not skill.side_effects:
        return None
    ctx = current_run_context()
    if ctx is None:
        return None
    refusal = ctx.side_effect_refusal()
    if refusal is None and not ctx.mandate.allows_side_effects:
        refusal = "the user's request asks for no order or other action with side effects"
    if refusal is not None:
        SIDE_EFFECTS_REFUSED.labels(skill=safe_label(skill.name)).inc()
    return refusal


def guarded(skill: Skill, agent: str, recorder: ToolCallRecorder | None = None) -> Callable[..., Any]:
    """``skill.func`` as an async function with its timeout enforced and each call recorded.

    A call past ``skill.timeout_s`` returns ``"error: NAME timed out after Ns"``; a raised
    exception is recorded and propagates (AutoGen turns it into an error result). A
    :class:`~alina.skills._contract.ToolOutput`'s data (secrets masked) goes into the run
    context's ``outputs`` under the call's id and into the record. The wrapper keeps the
    function's signature, docstring and annotations.
    """
    func = skill.func

    @functools.wraps(func)
    async def call(**kwargs: Any) -> Any:
        start, summary = time.perf_counter(), ""
        data: dict[str, Any] | None = None
        outcome: Outcome = "error"
        task: asyncio.Future[Any] | None = None
        try:
            refusal = side_effect_refusal(skill)
            if refusal is not None:
                summary = f"{ERROR_PREFIX} {skill.name} refused: {refusal}. Nothing was done."
                return summary
            if inspect.iscoroutinefunction(func):
                task = asyncio.ensure_future(func(**kwargs))
            else:
                task = _run_in_thread(func, kwargs, skill.name)
            done, _ = await asyncio.wait({task}, timeout=skill.timeout_s)
            if not done:
                task.cancel()
                if isinstance(task, asyncio.Task):  # let it run its cleanup, as wait_for does
                    await asyncio.wait({task}, timeout=_CANCEL_GRACE_S)
                outcome = "timeout"
                summary = f"{ERROR_PREFIX} {skill.name} timed out after {skill.timeout_s:g}s"
                return summary
            result = task.result()
            if isinstance(result, ToolOutput):  # the data facts are read from, kept with the run
                data = mask_secrets(result.data)
                ctx, call_id = current_run_context(), current_call_id()
                if ctx is not None and call_id is not None:
                    ctx.outputs[call_id] = data
            is_error = isinstance(result, str) and result.startswith(ERROR_PREFIX)
            outcome, summary = ("error" if is_error else "ok"), summarize_result(result)
            return result
        except asyncio.CancelledError:
            if task is not None:
                task.cancel()
            summary = "cancelled"
            raise
        except Exception as exc:
            summary = summarize_result(error_line(exc))
            raise
        finally:
            if recorder is not None:
                await _record(
                    recorder,
                    ToolCallRecord(
                        run_id=current_run_id(),
                        agent=agent,
                        tool=skill.name,
                        arguments=mask_secrets(kwargs),
                        result_summary=summary,
                        duration_ms=(time.perf_counter() - start) * 1000,
                        outcome=outcome,
                        call_id=current_call_id(),
                        data=data,
                    ),
                )

    call.__name__ = call.__qualname__ = skill.name
    return call


async def _record(recorder: ToolCallRecorder, record: ToolCallRecord) -> None:
    try:
        await recorder.record(record)
    except Exception as exc:  # recording fails open
        logger.warning("tool call %s/%s not recorded: %s", record.agent, record.tool, exc)
