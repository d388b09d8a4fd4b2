"""The one strict pydantic base of every configuration model."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel", "project_root"]


class StrictModel(BaseModel):
    """Unknown fields are errors (a misspelt key is never a silent no-op); assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def project_root() -> Path:
    """The repository root (the folder holding ``config.yaml`` next to the package)."""
    return Path(__file__).resolve().parents[2]
