"""The Python API: :class:`Alina`, the application object the CLI and notebooks stand on.

``async with Alina.from_config() as app: report = await app.run("...")``, or in a notebook
``app = Alina.sync()`` and ``app.run("...")``. See :mod:`alina.api._app` for how the parts are
owned and handed down.
"""

from alina.api._app import Alina, ChatSession
from alina.api._results import Message, RunReport, Score, ToolCall
from alina.api._sections import EntityNotFound, Memory, Prompts, Runs, Trading, backtest
from alina.api._sync import SyncAlina, SyncChat, SyncSection

__all__ = [
    "Alina",
    "ChatSession",
    "EntityNotFound",
    "Memory",
    "Message",
    "Prompts",
    "RunReport",
    "Runs",
    "Score",
    "SyncAlina",
    "SyncChat",
    "SyncSection",
    "ToolCall",
    "Trading",
    "backtest",
]
