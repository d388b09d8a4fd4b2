"""The arguments the user's request names — a time window, a trading pair, an order id — read in code.

A report answers the question asked only if the window and pair the user named reach the tool.
The trader's first tool call is written by a 135M model under a grammar: the grammar makes the
call well-formed, but the model fills arguments badly (it leaves ``hours`` at its default, or
copies the ``e.g. 24`` of the description, for "the last 6 hours"). So the tools take those
arguments from the run's request themselves, through :func:`task_arguments`:

* when the user's own words name exactly one window ("last 6 hours", "past 2 days", "last
  week", "24h"), exactly one pair ("BTC/USDT", "ETH", "bitcoin") or exactly one order id
  ("cancel order paper-3"), the tool uses it, whatever the model wrote;
* when they name none, or several different ones ("compare the last day with the last week"),
  the model's argument stands — the request is not unambiguous, so code does not guess.

Why at the tool and not in the grammar: the run's request is known for certain only in the run
(:func:`~alina.skills.context.current_run_context`), while the model client sees a message list
and a tool's JSON schema, which says nothing about what an argument means. Correcting at the
tool works the same for every provider (llama.cpp, OpenAI-compatible servers, Ollama), every
turn kind (forced, model's choice, later rounds) and scripted clients; the tool's result states
the window and pair it used, so the answer is written from what was actually summarised. A pair
the request names that has no data is not swapped for one that has: the tool then reports the
unknown symbol instead of answering a different question.

Quoted text and material after a colon whose head asks for nothing ("Summarise this news: ...")
are not the user's own words (:func:`alina.trading.mandate.own_words`), so a pasted article that
mentions "the past week" or "ETH" does not steer the tool.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from alina.skills.context import current_run_context
from alina.trading.mandate import own_words, packaged_symbols
from alina.trading.market_data import UnknownSymbolError, available_symbols, normalize_symbol

__all__ = ["TaskArguments", "named_order_id", "named_pair", "named_window_hours", "task_arguments"]

_UNIT_HOURS = {
    "minute": 1 / 60,
    "minutes": 1 / 60,
    "min": 1 / 60,
    "mins": 1 / 60,
    "hour": 1.0,
    "hours": 1.0,
    "hr": 1.0,
    "hrs": 1.0,
    "h": 1.0,
    "day": 24.0,
    "days": 24.0,
    "d": 24.0,
    "week": 168.0,
    "weeks": 168.0,
    "wk": 168.0,
    "wks": 168.0,
    "w": 168.0,
    "month": 720.0,
    "months": 720.0,
}
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "a": 1,
    "an": 1,
}
_UNIT = r"(?P<unit>minutes?|mins?|hours?|hrs?|h|days?|d|weeks?|wks?|w|months?)\b"
_COUNT = r"(?P<num>\d+(?:\.\d+)?|" + "|".join(w for w in _NUMBER_WORDS if len(w) > 2) + ")"
# "6 hours", "24h", "2-day", "six hours" (a count, then a unit)
_COUNTED = re.compile(r"(?<![\w.])" + _COUNT + r"\s*-?\s*" + _UNIT, re.I)
# "last hour", "past day", "the previous week" (one unit), "last 3 days"
_LAST = re.compile(
    r"\b(?:last|past|previous|prior|trailing)\s+(?:(?P<num>\d+(?:\.\d+)?|[a-z]+)\s*-?\s*)?" + _UNIT, re.I
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[/-][A-Za-z0-9]+)?(?::[A-Za-z0-9]+)?")
_QUOTES = frozenset({"USDT", "USD", "USDC", "BUSD", "EUR"})
# "order paper-3", "order id 123456", "order #42", or a paper id anywhere; an id has a digit.
_ORDER_ID = re.compile(
    r"\border\s*(?:id\s*)?[#:]?\s*(?P<id>(?=[\w-]*\d)[A-Za-z0-9][\w-]*)|\b(?P<paper>paper-\d+)\b", re.I
)
_ALIASES = {
    "bitcoin": "BTC",
    "ethereum": "ETH",
    "ether": "ETH",
    "dogecoin": "DOGE",
    "litecoin": "LTC",
    "ripple": "XRP",
    "cardano": "ADA",
    "tron": "TRX",
}


@dataclass(frozen=True)
class TaskArguments:
    """What the request names unambiguously; ``None`` where it names nothing (or several)."""

    hours: float | None = None
    symbol: str | None = None
    order_id: str | None = None


def _count(text: str | None) -> float | None:
    if not text:
        return 1.0  # "last hour": one unit
    word = text.lower()
    if word in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[word])
    try:
        return float(word)
    except ValueError:
        return None  # "last few days": no figure to use


def named_window_hours(text: str) -> float | None:
    """The one time window ``text`` names, in hours; None when it names none or several.

    Reads "last 6 hours", "past 2 days", "last week", "the last hour", "24h", "a 2-day window",
    "six hours", "last 30 minutes". Calendar words ("today", "this week") name no window.
    """
    found: set[float] = set()
    for m in (*_COUNTED.finditer(text), *_LAST.finditer(text)):
        n = _count(m.group("num"))
        if n is not None and n > 0:
            found.add(round(n * _UNIT_HOURS[m.group("unit").lower()], 6))
    return found.pop() if len(found) == 1 else None


@functools.cache
def _known_symbols() -> tuple[str, ...]:
    """Every pair the desk knows: the packaged markets plus the pairs with bundled data."""
    return tuple(dict.fromkeys([*available_symbols(), *packaged_symbols()]))


def named_pair(text: str, symbols: Iterable[str] | None = None) -> str | None:
    """The one trading pair ``text`` names, as a symbol of ``symbols`` (default: every known
    pair); None when it names none or several different ones.

    Accepts "BTC/USDT", "btcusdt", a bare base asset ("ETH", a USDT quote winning) and common
    names ("bitcoin"). A pair-shaped word that is not known ("SOL/USDT") counts as named, so
    the tool reports it as unknown rather than answering about another pair.
    """
    avail = list(symbols) if symbols is not None else list(_known_symbols())
    found: list[str] = []
    for m in _WORD.finditer(text):
        word = _ALIASES.get(m.group(0).lower(), m.group(0))
        if word.upper() in _QUOTES or len(word) < 2:
            continue
        try:
            pair = normalize_symbol(word, avail)
        except UnknownSymbolError:
            if "/" not in word:
                continue
            pair = word.upper()
        if pair not in found:
            found.append(pair)
    return found[0] if len(found) == 1 else None


def named_order_id(text: str) -> str | None:
    """The one order id ``text`` names ("order paper-3", "order id 123", "order #42", "paper-7");
    None when it names none or several."""
    found = {m.group("id") or m.group("paper") for m in _ORDER_ID.finditer(text)}
    return found.pop() if len(found) == 1 else None


def task_arguments(task: str | None = None) -> TaskArguments:
    """The window, pair and order id ``task`` names (default: the current run's request).

    Outside a run (a notebook or a test calling a tool directly) nothing is named, so the
    caller's arguments stand.
    """
    if task is None:
        ctx = current_run_context()
        if ctx is None:
            return TaskArguments()
        task = ctx.task
    words = own_words(task or "")
    return TaskArguments(
        hours=named_window_hours(words), symbol=named_pair(words), order_id=named_order_id(words)
    )
