"""What the vector store holds (:class:`MemoryItem`) and what a search returns (:class:`MemoryHit`)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from alina.settings.memory import KINDS, SHARED

__all__ = ["MemoryHit", "MemoryItem", "RESERVED", "SCOPE_RE", "render_hits", "unique_hits"]

RESERVED = ("kind", "scope", "run_id", "message_seq", "created_at")
"""Metadata keys of the store itself; a memory's ``extra`` may not use them."""
SCOPE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,62}[a-zA-Z0-9])?$")


# -- items ---------------------------------------------------------------------------------------
@dataclass
class MemoryItem:
    """One memory to store. ``id`` defaults to a new uuid hex; storing an existing id replaces it."""

    text: str
    kind: str = "note"
    scope: str = SHARED
    run_id: str | None = None
    message_seq: int | None = None
    id: str = ""
    created_at: float = field(default_factory=time.time)
    extra: dict[str, str | int | float | bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = self.id or uuid.uuid4().hex
        if self.kind not in KINDS:
            raise ValueError(f"memory kind must be one of {', '.join(KINDS)} (got {self.kind!r})")
        if not SCOPE_RE.match(self.scope):
            raise ValueError(
                "memory scope must be an agent name or 'shared': letters, digits, '_' or '-', at most "
                f"64 characters (got {self.scope!r})"
            )
        if not self.text.strip():
            raise ValueError(f"memory {self.id!r} has no text")
        clash = set(self.extra) & set(RESERVED)
        if clash:
            raise ValueError(f"extra metadata may not use the reserved keys {sorted(clash)}")

    def metadata(self) -> dict[str, str | int | float | bool]:
        meta: dict[str, str | int | float | bool] = {
            **self.extra,
            "kind": self.kind,
            "scope": self.scope,
            "created_at": self.created_at,
        }
        if self.run_id is not None:  # Chroma rejects None values
            meta["run_id"] = self.run_id
        if self.message_seq is not None:
            meta["message_seq"] = self.message_seq
        return meta


@dataclass(frozen=True)
class MemoryHit:
    """A retrieved memory: its text, score (cosine similarity, higher is closer) and provenance."""

    id: str
    text: str
    score: float
    kind: str
    scope: str
    run_id: str | None
    message_seq: int | None
    created_at: datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_chroma(
        cls, id_: str, text: str | None, meta: Mapping[str, Any] | None, distance: float
    ) -> MemoryHit:
        """A hit from one row of a Chroma cosine-space query (score = 1 - distance)."""
        meta = dict(meta or {})
        ts = meta.pop("created_at", None)
        seq = meta.pop("message_seq", None)
        return cls(
            id=id_,
            text=text or "",
            score=min(1.0, max(-1.0, 1.0 - float(distance))),  # float noise
            kind=str(meta.pop("kind", "note")),
            scope=str(meta.pop("scope", SHARED)),
            run_id=meta.pop("run_id", None),
            message_seq=int(seq) if seq is not None else None,
            created_at=datetime.fromtimestamp(float(ts), UTC) if ts is not None else None,
            extra=meta,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``created_at`` as ISO 8601)."""
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat() if self.created_at else None
        return out


def _line(hit: MemoryHit) -> str:
    """A retrieved memory as one compact prompt line: ``- [kind] text``."""
    return f"- [{hit.kind}] {' '.join(hit.text.split())}"


def unique_hits(hits: Sequence[MemoryHit]) -> list[MemoryHit]:
    """Runs with the same outcome leave identical memories: of the hits that make the same
    prompt line, keep the first (best-scored); repeating them costs tokens and adds nothing."""
    first: dict[str, MemoryHit] = {}
    for h in hits:
        first.setdefault(_line(h), h)
    return list(first.values())


def render_hits(hits: Sequence[MemoryHit]) -> str:
    """Retrieved memories as compact prompt lines, each line once."""
    return "\n".join(_line(h) for h in unique_hits(hits))
