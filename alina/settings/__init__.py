"""The section models of ``config.yaml`` (agents, models, team, stack, alerts, monitoring,
optimizer, memory, trading, serve).

This is the bottom layer: it imports pydantic and :mod:`alina._secrets` only, so loading the
configuration (``alina config check``) never loads AutoGen, numpy, ccxt or a model.
:mod:`alina.config` assembles these sections into ``AlinaConfig``; the packages that use a
section re-export it from their old place (``alina.trading.config``, ``alina.memory_store.vector``).
"""

from alina.settings._base import StrictModel

__all__ = ["StrictModel"]
