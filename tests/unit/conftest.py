"""Unit tests see a quiet machine: the monitor's health verdict must not depend on how loaded
the CI box is (a scripted answer is checked against that verdict)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _quiet_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("alina.skills.builtin.os.getloadavg", lambda: (0.2, 0.2, 0.2))
