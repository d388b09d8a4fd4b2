"""Secret detection and redaction, shared by every place where text leaves the process.

Low level on purpose (standard library only, imports nothing from ``alina``), so the config,
the skills, the stores, the trading adapters and the logging setup can all use the same rules:

* :func:`is_secret_name` - a name (argument, field, query parameter) that holds a secret:
  ``api_key``, ``apiKey``, ``access_token``, ``db_password``, ``X-MBX-APIKEY`` ...;
* :func:`looks_like_secret` - a value shaped like a key, whatever it is called: well-known key
  prefixes (``sk-``, ``ghp_``, ``xox?-``, ``AKIA``, ``AIza``, ``hf_``, ``glpat-``, ``sk_live_``),
  JWTs, PEM private keys, and long random-looking tokens (upper and lower case letters and
  digits, mixed the way random strings are; hex ids such as run ids do not count);
* :func:`redact_text` - a text with every key-shaped substring, every ``name=value`` /
  ``name: value`` / ``"name": "value"`` pair with a secret name, URL passwords and
  ``Bearer`` tokens replaced by ``***``;
* :func:`mask_secrets` - a copy of a mapping (any depth) with values under secret names and
  key-shaped strings masked; :func:`mask_arguments` the same for a tool call's JSON arguments;
* :func:`env_name_problem` - why a ``*_env`` setting is not a conventional environment variable
  name (``^[A-Z_][A-Z0-9_]*$``, and not itself key-shaped), without echoing it;
* :func:`install_log_redaction` - every log record redacted when it is created.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ENV_NAME",
    "MASK",
    "RedactingFilter",
    "env_name_problem",
    "install_log_redaction",
    "is_secret_name",
    "looks_like_secret",
    "mask_arguments",
    "mask_secrets",
    "redact_text",
]

MASK = "***"

_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "secret",
        "token",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "pass",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "cookie",
        "signature",
        "privatekey",
        "accesskey",
        "secretkey",
        "sessionid",
        "jwt",
        "bearer",
    }
)
# Every secret name and auth scheme contains one of these (a cheap test before the pair scans).
_HINTS = re.compile("key|secret|token|pass|pwd|cred|auth|cookie|signature|jwt|bearer|basic|session")
# A name ending in one of these describes a secret without holding it (``api_key_env`` names a
# variable, ``key_file`` a path, ``token_count`` a number), so its value is shown.
_DESCRIPTORS = frozenset(
    {
        "env",
        "name",
        "names",
        "file",
        "path",
        "id",
        "ids",
        "type",
        "kind",
        "count",
        "len",
        "length",
        "size",
        "version",
        "ttl",
        "expiry",
        "expires",
        "at",
        "s",
        "ms",
        "url",
    }
)

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
"""A conventional environment variable name (what every ``*_env`` setting must hold)."""

# Key-shaped substrings. Each starts where no letter/digit precedes it, so ``task-...`` or
# ``risk-...`` never match ``sk-``; the lookahead on the first character keeps the scan fast.
_KEY_PATTERNS = [
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$)",
    r"sk-[A-Za-z0-9_\-]{6,}",  # OpenAI, Anthropic (sk-proj-..., sk-ant-...)
    r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{8,}",  # Stripe
    r"gh[pousr]_[A-Za-z0-9]{16,}",
    r"github_pat_[A-Za-z0-9_]{16,}",
    r"glpat-[A-Za-z0-9_\-]{16,}",
    r"xox[abposr]-[A-Za-z0-9\-]{8,}",  # Slack
    r"xapp-[A-Za-z0-9\-]{8,}",
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}(?![A-Za-z0-9])",  # AWS key ids
    r"AIza[0-9A-Za-z_\-]{30,}",  # Google
    r"hf_[A-Za-z0-9]{20,}",  # Hugging Face
    r"eyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}",  # JWT
]
_KEYS = re.compile(r"(?<![A-Za-z0-9])(?=[-srpgxAhe])(?:" + "|".join(_KEY_PATTERNS) + ")")
_KEY_MIN = 9  # the shortest text _KEYS matches ("sk-" and six characters): shorter ones skip the scan
_HEX_ID = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|[0-9a-f]{6,}")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/=_\-])")
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)([^@\s/]+)(@)")
_BEARER = re.compile(r"\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=\-]{8,}", re.IGNORECASE)
_NAME = r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}"
# "name": "value" / 'name': 'value' / \"name\": \"value\" (JSON inside JSON) / "name": 123
_QUOTED_PAIR = re.compile(
    r"(?P<q>\\*[\"'])(?P<name>" + _NAME + r")(?P=q)(?P<sep>\s*[:=]\s*)"
    r"(?P<val>\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|(?P<vq>\\+[\"'])(?:(?!(?P=vq)).)*?(?P=vq)"
    r"|(?![\[{\"'\\])[^\s,}\]]+)"
)
_LEADING_QUOTE = re.compile(r"\\*[\"']")
# name=value, name: value (query strings, headers, log lines, YAML). With ":" the name has no
# dots: ``models.x.api_key: unknown field`` is a dotted path followed by a message, not a pair.
_PLAIN_PAIR = re.compile(
    r"(?<![A-Za-z0-9_.\-\"'\\])(?:(?P<name>"
    + _NAME
    + r")(?P<sep>\s*=\s*)|(?P<cname>[A-Za-z_][A-Za-z0-9_\-]{0,63})"
    r"(?P<csep>:[ \t]*))(?P<val>(?!\*\*\*)[^\s&,;'\"<>(){}\[\]]+)"
)


@functools.lru_cache(maxsize=4096)  # names repeat (argument, field, payload keys): split each once
def is_secret_name(name: str) -> bool:
    """Whether a value called ``name`` holds a secret.

    True when one of its words (split at ``_``, ``-``, ``.`` and camelCase) or the whole name is
    key, secret, token, password, passphrase, pwd, credential, auth, cookie, signature ...,
    unless the last word only describes the secret (``api_key_env``, ``key_file``, ``token_id``).
    ``api_key``, ``apiKey``, ``access_token``, ``db_password`` are secret; ``max_tokens``,
    ``keyword``, ``author`` are not.
    """
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    parts = [w for w in re.split(r"[^a-z0-9]+", words) if w]
    if not parts or (len(parts) > 1 and parts[-1] in _DESCRIPTORS):
        return False
    return bool(_SECRET_WORDS.intersection(parts)) or "".join(parts) in _SECRET_WORDS


def _random_looking(token: str) -> bool:
    """A long token mixing upper, lower case and digits as random strings do (not a word,
    a path, a camelCase identifier or a hex id)."""
    # Hex ids (uuids, digests, run ids) glued to a name (``Manager_acc6b10e-3b1a-...``) are not keys.
    chars = [c for c in _HEX_ID.sub("", token) if c.isalnum()]
    if len(chars) < 20:
        return False
    classes = ["u" if c.isupper() else "l" if c.islower() else "d" for c in chars]
    if not {"u", "l", "d"} <= set(classes):
        return False
    changes = sum(a != b for a, b in zip(classes, classes[1:], strict=False))
    # Random base62 changes class at ~62% of positions; identifiers and file names rarely do.
    return changes / (len(chars) - 1) >= 0.3


def looks_like_secret(value: object) -> bool:
    """Whether ``value`` (a string) contains a key-shaped substring (see the module docstring)."""
    if not isinstance(value, str) or len(value) < 8:
        return False
    return bool(_KEYS.search(value)) or any(_random_looking(m.group()) for m in _TOKEN.finditer(value))


def _mask_pair(m: re.Match[str], quote_bare: bool) -> str:
    quoted = _LEADING_QUOTE.match(m.group("val"))
    if quoted:  # keep the value's own quoting (any depth of escaping): JSON stays JSON
        q = quoted.group()
    else:
        q = m.group("q") if quote_bare else ""
    return m.group()[: m.start("val") - m.start()] + f"{q}{MASK}{q}"


def redact_text(text: str) -> str:
    """``text`` with secrets replaced by ``***``: key-shaped substrings, values of secret-named
    pairs (``apiKey=...``, ``"api_key": "..."``, ``password: ...``), URL passwords
    (``scheme://user:***@host``) and ``Bearer``/``Basic`` tokens. Everything else is unchanged,
    so applying it twice gives the same text."""
    if len(text) < 6:  # shorter than any key shape or pair; most payload values
        return text
    if len(text) >= _KEY_MIN:
        text = _KEYS.sub(MASK, text)
    if len(text) >= 20:
        text = _TOKEN.sub(lambda m: MASK if _random_looking(m.group()) else m.group(), text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    if not _HINTS.search(text.lower()):  # the common case: no secret name, no pair to look at
        return text
    text = _BEARER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _sub_pairs(_QUOTED_PAIR, text, quote_bare=True)
    return _sub_pairs(_PLAIN_PAIR, text, quote_bare=False)


def _sub_pairs(pattern: re.Pattern[str], text: str, quote_bare: bool) -> str:
    """Mask the values of ``pattern``'s secret-named pairs. A pair with an ordinary name is
    skipped only up to its value, so a pair quoted inside that value is still found."""
    out: list[str] = []
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        if is_secret_name(m.group("name") or m.group("cname")):
            out.append(text[pos : m.start()] + _mask_pair(m, quote_bare))
            pos = m.end()
        else:
            out.append(text[pos : m.start("val")])
            pos = m.start("val")
    out.append(text[pos:])
    return "".join(out)


def mask_secrets(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``arguments`` with secrets masked, at any depth of nested dicts and lists:
    the whole value under a secret name (:func:`is_secret_name`) becomes ``***``, and every
    other string passes through :func:`redact_text` (a key-shaped value becomes ``***``).
    The input is not modified."""
    masked = _mask(arguments)
    return masked if type(masked) is dict else dict(masked)


_PLAIN = frozenset({int, float, bool, type(None)})  # JSON values with no text in them


def _mask(value: Any) -> Any:
    # Exact-type tests first: the common values skip the (slow) ABC check against Mapping.
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _PLAIN:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {k: (MASK if is_secret_name(str(k)) and v is not None else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def mask_arguments(arguments: str) -> str:
    """A tool call's JSON arguments text with secrets masked as :func:`mask_secrets` does; text
    that is not a JSON object is passed through :func:`redact_text`. Unchanged arguments keep
    their exact text."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return redact_text(arguments)
    if not isinstance(parsed, dict):
        return redact_text(arguments)
    masked = mask_secrets(parsed)
    return arguments if masked == parsed else json.dumps(masked, ensure_ascii=False)


def env_name_problem(value: object) -> str | None:
    """Why ``value`` cannot be the NAME of an environment variable (None when it can).

    The message never contains the value: a key pasted into an ``*_env`` setting must not be
    printed back."""
    if not isinstance(value, str) or not ENV_NAME.match(value) or looks_like_secret(value):
        return (
            "must name an environment variable (A-Z, 0-9, _; e.g. OPENAI_API_KEY), not hold the key "
            "itself; put the key in that variable (value hidden)"
        )
    return None


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and exception text in place (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace ``msg``/``args`` by the redacted message, and pre-render a redacted traceback."""
        if getattr(record, "_alina_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's problem to report
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        record._alina_redacted = True
        return True


_FILTER = RedactingFilter()
_installed = False


def install_log_redaction() -> None:
    """Redact every log record when it is created (idempotent).

    A filter on a logger only sees records logged on that very logger, not those of its
    children, and handlers come and go (pytest's, an operator's); so the filter runs from the
    log record factory, for records of every logger (libraries such as ccxt or httpx log
    request URLs too). It is also attached to the ``alina`` logger for code that checks there.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    logging.getLogger("alina").addFilter(_FILTER)
    _installed = True
