"""The one strict pydantic base of every configuration model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Unknown fields are errors (a misspelt key is never a silent no-op); assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
