"""Blocking twins of :class:`alina.Alina` for notebooks and scripts.

The application runs on an event loop of its own, in a daemon thread; every blocking method
submits its coroutine there and waits. That works the same in a plain script and inside
Jupyter, whose kernel already runs an event loop in the main thread (where
``asyncio.run`` would fail). Ctrl-C (a notebook's "interrupt") cancels the call in progress.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from alina.api._app import Alina
    from alina.api._results import RunReport

__all__ = ["SyncAlina", "SyncSection"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="alina-loop", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (re-raising its exception)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


class SyncSection:
    """A section of the application (``memory``, ``trading``, ``prompts``, ``runs``) whose
    coroutine methods block until done; see the async section for each method's contract."""

    def __init__(self, section: Any, loop: _LoopThread) -> None:
        self._section, self._loop = section, loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._section, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._loop.call(attr(*args, **kwargs))

        return blocking

    def __dir__(self) -> list[str]:
        return [n for n in dir(self._section) if not n.startswith("_")]


class SyncAlina:
    """:class:`alina.Alina` with blocking methods (made by :meth:`alina.Alina.sync`).

    ``with Alina.sync() as app: report = app.run("...")``; sections as on the async
    application (``app.memory.search(...)``, ``app.trading.positions()``, ...).
    """

    def __init__(self, app: Alina) -> None:
        self.app = app
        """The asynchronous application underneath (its loop runs in another thread)."""
        self._loop = _LoopThread()
        self._loop.call(app.open())
        self.memory = SyncSection(app.memory, self._loop)
        self.trading = SyncSection(app.trading, self._loop)
        self.prompts = SyncSection(app.prompts, self._loop)
        self.runs = SyncSection(app.runs, self._loop)
        self._closed = False

    @property
    def config(self) -> Any:
        """The validated configuration."""
        return self.app.config

    def __enter__(self) -> SyncAlina:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, fn: Callable[[Alina], Coroutine[Any, Any, T]]) -> T:
        """Run ``fn(app)`` on the application's loop and return its result (for anything the
        blocking methods do not cover)."""
        return self._loop.call(fn(self.app))

    def run(self, task: str, *, run_id: str | None = None, mode: str | None = None) -> RunReport:
        """Blocking :meth:`alina.Alina.run`."""
        return self._loop.call(self.app.run(task, run_id=run_id, mode=mode))

    def resume(self, run_id: str, *, mode: str | None = None) -> RunReport:
        """Blocking :meth:`alina.Alina.resume`."""
        return self._loop.call(self.app.resume(run_id, mode=mode))

    def chat(self) -> SyncChat:
        """Blocking :meth:`alina.Alina.chat`."""
        return SyncChat(self)

    def status(self, **kwargs: Any) -> dict[str, Any]:
        """Blocking :meth:`alina.Alina.status`."""
        return self._loop.call(self.app.status(**kwargs))

    def close(self) -> None:
        """Close the application and stop its loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.call(self.app.close())
        finally:
            self._loop.stop()


class SyncChat:
    """A blocking :class:`alina.api.ChatSession`."""

    def __init__(self, app: SyncAlina) -> None:
        self._app = app
        self._session = app.app.chat()

    def send(self, text: str) -> RunReport:
        """One task or follow-up; returns its run's report."""
        return self._app._loop.call(self._session.send(text))

    @property
    def reports(self) -> list[RunReport]:
        """Every turn's report, oldest first."""
        return self._session.reports

    @property
    def answers(self) -> list[str]:
        """ALINA's answers so far, oldest first."""
        return self._session.answers
