"""Prompt versions in Postgres (table ``prompt_history``, migration 0011): the file versions, the
optimizer's candidates, promotions, rejections and rollbacks, and which version is in use.

The version an agent runs with is its row with the highest ``activated`` number: a promotion, a
rollback or a newer prompt file takes that number from a sequence. With no row yet, it is the
prompt file's (recorded on first use). A rollback is a new row (source ``rollback``) holding the
target's text, so history only grows; the row it replaces becomes ``rolled_back``.

Version numbers are shared by files and candidates: a candidate gets the next number above both
the stored ones and the file's. A prompt file whose version number is already stored with other
text is refused (:class:`PromptVersionError`): bump the file's version above the stored ones.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alina.memory_store._prompt_rows import (
    _COLUMNS,
    PromptVersion,
    PromptVersionError,
    Source,
    Status,
    unified_diff,
)
from alina.memory_store.runs import unavailable_error
from alina.meta_prompts import Prompt, check_candidate, load_prompt, prompt_names, split_protected
from alina.meta_prompts._prompts import protected_hash, system_digest

__all__ = ["PromptVersion", "PromptVersionError", "PromptVersions", "unified_diff"]

logger = logging.getLogger(__name__)


class PromptVersions:
    """The prompt-version repository. Each call opens one connection (this is not a hot path:
    once per run and per operator command); mutations of one agent are serialized by a
    transaction-scoped advisory lock. The tables come from the migrations (``RunStore.open``,
    ``alina db migrate``)."""

    def __init__(
        self,
        dsn: str,
        *,
        load: Callable[[str], Prompt] = load_prompt,
        agents: Callable[[], Iterable[str]] = prompt_names,
        connect_timeout: int = 5,
    ) -> None:
        """``load(agent)``: the agent's prompt file; ``agents()``: the known agents."""
        self._dsn = dsn
        self._load = load
        self._agents = agents
        self._connect_timeout = max(2, int(connect_timeout))

    @classmethod
    def from_config(cls, config: Any) -> PromptVersions:
        """The repository of a configured system (an ``AlinaConfig``): its agents (ALINA and the
        specialists) with the prompt files ``agents.NAME.prompt`` names."""
        from alina.config import ORCHESTRATOR, SPECIALISTS

        return cls(
            config.postgres.dsn(),
            load=lambda agent: load_prompt(config.agents[agent].prompt or agent),
            agents=lambda: (ORCHESTRATOR, *SPECIALISTS),
            connect_timeout=int(config.postgres.connect_timeout_s),
        )

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
        try:
            conn = await AsyncConnection.connect(
                self._dsn, autocommit=True, connect_timeout=self._connect_timeout, row_factory=dict_row
            )
        except psycopg.OperationalError as exc:
            raise unavailable_error(self._dsn, exc) from exc
        async with conn:
            yield conn

    @asynccontextmanager
    async def _locked(self, agent: str) -> AsyncIterator[AsyncConnection[dict[str, Any]]]:
        """A connection in a transaction holding ``agent``'s lock, its file version recorded."""
        file = self.file(agent)
        async with self._conn() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"alina.prompt:{agent}",))
            await self._record_file(conn, file)
            yield conn

    def file(self, agent: str) -> Prompt:
        """The prompt file of ``agent``; PromptVersionError for an unknown agent."""
        known = sorted(self._agents())
        if agent not in known:
            raise PromptVersionError(f"unknown agent {agent!r}; known: {', '.join(known)}")
        return self._load(agent)

    # -- reads -------------------------------------------------------------------------------

    async def history(self, agent: str) -> list[PromptVersion]:
        """Every stored version of ``agent``, oldest first (its file version recorded first)."""
        async with self._locked(agent) as conn:
            return await self._history(conn, agent)

    async def get(self, agent: str, version: int | None = None) -> PromptVersion:
        """One version of ``agent`` (default: the one in use); PromptVersionError if unknown."""
        async with self._locked(agent) as conn:
            return await self._get(conn, agent, version)

    async def diff(self, agent: str, a: int, b: int) -> str:
        """The unified diff from version ``a`` to version ``b`` of ``agent``'s system text."""
        async with self._locked(agent) as conn:
            va, vb = await self._get(conn, agent, a), await self._get(conn, agent, b)
        return unified_diff(va.system, vb.system, from_name=f"{agent} v{a}", to_name=f"{agent} v{b}")

    async def active(self, agent: str) -> Prompt:
        """The prompt ``agent`` runs with: the promoted or rolled-back version in use, else the
        file's (a newer file version supersedes what was promoted before it). Keywords,
        examples and description always come from the file."""
        async with self._locked(agent) as conn:
            return self._as_prompt(self.file(agent), await self._get(conn, agent, None))

    async def active_prompts(self, agents: Iterable[str] | None = None) -> dict[str, Prompt]:
        """:meth:`active` of every agent (default: every prompt file), on one connection."""
        out: dict[str, Prompt] = {}
        names = sorted(agents if agents is not None else self._agents())
        async with self._conn() as conn:
            for agent in names:
                file = self.file(agent)
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"alina.prompt:{agent}",)
                    )
                    await self._record_file(conn, file)
                    out[agent] = self._as_prompt(file, await self._get(conn, agent, None))
        return out

    # -- writes ------------------------------------------------------------------------------

    async def record_file(self, agent: str) -> PromptVersion:
        """Record ``agent``'s prompt file version if it is new (it goes into use when no version
        is in use yet or the one in use is older); return the stored row."""
        async with self._locked(agent) as conn:
            return await self._get(conn, agent, self.file(agent).version)

    async def add_candidate(
        self,
        agent: str,
        system: str,
        *,
        reason: str | None = None,
        scores: Mapping[str, Any] | None = None,
    ) -> PromptVersion:
        """Store ``system`` as the next version of ``agent``, derived from the version in use.
        It is checked first (:func:`~alina.meta_prompts.check_candidate` against the version in
        use, every stored text counting as tried): a refused text is stored as ``rejected`` with
        the problems as its reason (so it counts as tried), a sound one as ``candidate``."""
        async with self._locked(agent) as conn:
            file = self.file(agent)
            current = await self._get(conn, agent, None)
            tried = {v.digest for v in await self._history(conn, agent)}
            problems = check_candidate(self._as_prompt(file, current), system, tried)
            text = system.strip()
            version = await self._next_version(conn, agent, file)
            await self._insert(
                conn,
                agent,
                version,
                current.version,
                text,
                "candidate",
                "rejected" if problems else "candidate",
                reason="; ".join(problems) if problems else reason,
                scores=scores,
                diff=unified_diff(
                    current.system,
                    text,
                    from_name=f"{agent} v{current.version}",
                    to_name=f"{agent} v{version}",
                ),
                decided=bool(problems),
            )
            return await self._get(conn, agent, version)

    async def promote(
        self,
        agent: str,
        version: int,
        *,
        reason: str,
        scores: Mapping[str, Any] | None = None,
        p_value: float | None = None,
    ) -> PromptVersion:
        """Put candidate ``version`` into use now, recording why (the gate's scores, p-value)."""
        async with self._locked(agent) as conn:
            row = await self._get(conn, agent, version)
            if row.status != "candidate":
                raise PromptVersionError(
                    f"{agent} v{version} is {row.status}; only a candidate can be promoted"
                )
            await conn.execute(
                "UPDATE prompt_history SET status = 'promoted', reason = %s, scores = %s, p_value = %s, "
                "decided_at = now(), activated = nextval('prompt_activation_seq') "
                "WHERE agent = %s AND version = %s",
                (reason, Jsonb(dict(scores or {})), p_value, agent, version),
            )
            return await self._get(conn, agent, version)

    async def reject(
        self,
        agent: str,
        version: int,
        *,
        reason: str,
        scores: Mapping[str, Any] | None = None,
        p_value: float | None = None,
    ) -> PromptVersion:
        """Mark candidate ``version`` rejected (it is never put into use; it stays tried), with
        the gate's scores and p-value when it was evaluated (``scores`` None keeps the stored ones)."""
        async with self._locked(agent) as conn:
            row = await self._get(conn, agent, version)
            if row.status != "candidate":
                raise PromptVersionError(
                    f"{agent} v{version} is {row.status}; only a candidate can be rejected"
                )
            await conn.execute(
                "UPDATE prompt_history SET status = 'rejected', reason = %s, decided_at = now(), "
                "scores = COALESCE(%s, scores), p_value = %s WHERE agent = %s AND version = %s",
                (reason, Jsonb(dict(scores)) if scores is not None else None, p_value, agent, version),
            )
            return await self._get(conn, agent, version)

    async def rollback(self, agent: str, version: int, *, reason: str) -> PromptVersion:
        """Put the text of ``version`` (one that was in use before) back into use now, as a new
        version (source ``rollback``, parent = ``version``); the version in use becomes
        ``rolled_back``. Refused: an unknown version, one never in use, the one in use, or one
        whose protected section differs from the prompt file's (a rollback never reverts the
        risk rules)."""
        if not reason.strip():
            raise PromptVersionError("a rollback needs a reason")
        async with self._locked(agent) as conn:
            file = self.file(agent)
            target = await self._get(conn, agent, version)
            current = await self._get(conn, agent, None)
            if target.activated is None:
                raise PromptVersionError(f"{agent} v{version} is {target.status}: it was never in use")
            if target.version == current.version or target.digest == current.digest:
                raise PromptVersionError(
                    f"{agent} v{version} is already the text in use (v{current.version})"
                )
            if target.protected_hash != file.protected_hash:
                raise PromptVersionError(
                    f"{agent} v{version} has another protected section than prompt file v{file.version}; "
                    "a rollback never changes the protected rules"
                )
            new = await self._next_version(conn, agent, file)
            await conn.execute(
                "UPDATE prompt_history SET status = 'rolled_back', decided_at = now() "
                "WHERE agent = %s AND version = %s",
                (agent, current.version),
            )
            await self._insert(
                conn,
                agent,
                new,
                version,
                target.system,
                "rollback",
                "active",
                reason=reason,
                diff=unified_diff(
                    current.system,
                    target.system,
                    from_name=f"{agent} v{current.version}",
                    to_name=f"{agent} v{new}",
                ),
                activate=True,
                decided=True,
            )
            return await self._get(conn, agent, new)

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _as_prompt(file: Prompt, row: PromptVersion) -> Prompt:
        if row.version == file.version and row.digest == file.digest:
            return file
        protected = split_protected(row.system)[1] or ""
        return dataclasses.replace(file, version=row.version, system=row.system, protected=protected)

    async def _record_file(self, conn: AsyncConnection[dict[str, Any]], file: Prompt) -> None:
        cur = await conn.execute(
            "SELECT digest FROM prompt_history WHERE agent = %s AND version = %s", (file.name, file.version)
        )
        row = await cur.fetchone()
        if row is not None:
            if row["digest"] != file.digest:
                top = await self._max_version(conn, file.name)
                raise PromptVersionError(
                    f"prompt file {file.name} v{file.version} differs from the stored v{file.version} "
                    f"({row['digest']} != {file.digest}); bump its version above {top}"
                )
            return
        current = await self._in_use(conn, file.name)
        newer = current is None or current.version < file.version
        await self._insert(
            conn,
            file.name,
            file.version,
            current.version if current else None,
            file.system,
            "file",
            "active",
            reason=f"prompt file v{file.version}",
            diff=unified_diff(
                current.system,
                file.system,
                from_name=f"{file.name} v{current.version}",
                to_name=f"{file.name} v{file.version}",
            )
            if current
            else None,
            activate=newer,
        )
        if newer:
            logger.info("prompt %s: file v%d (%s) is now in use", file.name, file.version, file.digest)

    async def _insert(
        self,
        conn: AsyncConnection[dict[str, Any]],
        agent: str,
        version: int,
        parent: int | None,
        system: str,
        source: Source,
        status: Status,
        *,
        reason: str | None = None,
        scores: Mapping[str, Any] | None = None,
        diff: str | None = None,
        activate: bool = False,
        decided: bool = False,
    ) -> None:
        await conn.execute(
            "INSERT INTO prompt_history (agent, version, parent_version, system, digest, protected_hash, "
            "source, status, scores, reason, diff, decided_at, activated) VALUES (%s, %s, %s, %s, %s, %s, "
            "%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, "
            "CASE WHEN %s THEN nextval('prompt_activation_seq') END)",
            (
                agent,
                version,
                parent,
                system,
                system_digest(system),
                protected_hash(split_protected(system)[1] or ""),
                source,
                status,
                Jsonb(dict(scores or {})),
                reason,
                diff,
                decided,
                activate,
            ),
        )

    async def _max_version(self, conn: AsyncConnection[dict[str, Any]], agent: str) -> int:
        cur = await conn.execute("SELECT max(version) AS v FROM prompt_history WHERE agent = %s", (agent,))
        row = await cur.fetchone()
        return int(row["v"] or 0) if row else 0

    async def _next_version(self, conn: AsyncConnection[dict[str, Any]], agent: str, file: Prompt) -> int:
        return max(await self._max_version(conn, agent), file.version) + 1

    async def _in_use(self, conn: AsyncConnection[dict[str, Any]], agent: str) -> PromptVersion | None:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM prompt_history WHERE agent = %s AND activated IS NOT NULL "
            "ORDER BY activated DESC LIMIT 1",
            (agent,),
        )
        row = await cur.fetchone()
        return PromptVersion(**row, in_use=True) if row else None

    async def _get(
        self, conn: AsyncConnection[dict[str, Any]], agent: str, version: int | None
    ) -> PromptVersion:
        current = await self._in_use(conn, agent)
        if version is None:
            if current is None:  # unreachable after _record_file, which activates the first row
                raise PromptVersionError(f"no version of {agent} is in use")
            return current
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM prompt_history WHERE agent = %s AND version = %s", (agent, version)
        )
        row = await cur.fetchone()
        if row is None:
            known = [v.version for v in await self._history(conn, agent)]
            raise PromptVersionError(f"{agent} has no version {version}; stored: {known}")
        return PromptVersion(**row, in_use=current is not None and current.version == version)

    async def _history(self, conn: AsyncConnection[dict[str, Any]], agent: str) -> list[PromptVersion]:
        current = await self._in_use(conn, agent)
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM prompt_history WHERE agent = %s ORDER BY version", (agent,)
        )
        return [
            PromptVersion(**r, in_use=current is not None and current.version == r["version"])
            for r in await cur.fetchall()
        ]
