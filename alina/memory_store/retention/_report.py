"""What ``alina memory prune`` reports: per backend, per rule, how many rows went."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DAY_S", "BackendReport", "PruneCount", "PruneReport", "fmt_days"]

DAY_S = 86400.0


@dataclass(frozen=True)
class PruneCount:
    """``count`` rows/keys of ``target`` deleted (or, in a dry run, to be deleted) by ``rule``."""

    target: str
    rule: str
    count: int


@dataclass
class BackendReport:
    """One backend's outcome. ``status``: ok | skipped (nothing configured for it) |
    unavailable (could not connect) | error (connected, then failed)."""

    backend: str
    location: str = ""
    status: str = "ok"
    error: str | None = None
    counts: list[PruneCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.status in ("unavailable", "error")

    def deleted(self) -> dict[str, int]:
        """Total per target (table, cache entries, vector memories)."""
        out: dict[str, int] = {}
        for c in self.counts:
            out[c.target] = out.get(c.target, 0) + c.count
        return out

    def add(self, target: str, rule: str, count: int) -> None:
        self.counts.append(PruneCount(target, rule, count))

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "location": self.location,
            "error": self.error,
            "deleted": self.deleted(),
            "rules": [c.__dict__ for c in self.counts],
            "notes": self.notes,
        }


@dataclass
class PruneReport:
    """What :func:`prune` did (or would do, ``dry_run``), per backend."""

    dry_run: bool
    postgres: BackendReport
    redis: BackendReport
    vectors: BackendReport
    duration_s: float = 0.0

    def backends(self) -> list[BackendReport]:
        return [self.postgres, self.redis, self.vectors]

    @property
    def ok(self) -> bool:
        """False when any backend was unavailable or failed (the CLI exits 1)."""
        return not any(b.failed for b in self.backends())

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ok": self.ok,
            "duration_s": round(self.duration_s, 3),
            **{b.backend: b.to_dict() for b in self.backends()},
        }


def fmt_days(days: float) -> str:
    return f"{days:g}d"
