"""The memory graph: entities and typed relations, each relation with its provenance.

Agents and tools record what they decided, used, observed or caused (``relate``); the query
side answers "what is around X" (``neighbours``), "how is X connected to Y" (``paths``, a
recursive CTE that never revisits a node) and "what do we know about X lately"
(``recent_facts``). Entities are identified by ``(kind, name)``, e.g. ``("asset", "BTC/USDT")``.
Every write masks secrets first (:mod:`alina._secrets`): entity names, attributes and facts
(a fact may quote a tool's arguments or result).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alina._secrets import mask_secrets, redact_text
from alina.memory_store.runs import RunStore

Kind = Literal["asset", "strategy", "model", "agent", "alert", "run", "tool"]
Rel = Literal["decided", "caused", "used", "observed", "contradicted"]
KINDS: tuple[str, ...] = ("asset", "strategy", "model", "agent", "alert", "run", "tool")
RELS: tuple[str, ...] = ("decided", "caused", "used", "observed", "contradicted")
EntityRef = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Edge:
    """One relation, as seen from the graph: ``src -rel-> dst`` with its provenance."""

    src: EntityRef
    rel: str
    dst: EntityRef
    fact: str | None
    run_id: str | None
    message_seq: int | None
    created_at: datetime

    def __str__(self) -> str:
        where = f" [run {self.run_id[:8]} #{self.message_seq}]" if self.run_id else ""
        fact = f": {self.fact}" if self.fact else ""
        return f"{self.src[0]}:{self.src[1]} -{self.rel}-> {self.dst[0]}:{self.dst[1]}{fact}{where}"


@dataclass(frozen=True)
class Relation:
    """A relation to record (:meth:`MemoryGraph.record`): ``src -rel-> dst`` with provenance."""

    src: EntityRef
    rel: str
    dst: EntityRef
    fact: str | None = None
    run_id: str | None = None
    message_seq: int | None = None


def _safe_ref(ref: EntityRef) -> EntityRef:
    return (ref[0], redact_text(ref[1]))


def _safe(r: Relation) -> Relation:
    """``r`` as it may be stored: names and fact with secrets masked."""
    fact = redact_text(r.fact) if r.fact else r.fact
    return Relation(_safe_ref(r.src), r.rel, _safe_ref(r.dst), fact, r.run_id, r.message_seq)


def parse_ref(text: str) -> EntityRef | str:
    """``"asset:BTC/USDT"`` -> ("asset", "BTC/USDT"); a bare name stays a str (any kind)."""
    kind, sep, name = text.partition(":")
    if sep and kind in KINDS and name:
        return (kind, name)
    return text


_EDGE_SELECT = """
SELECT s.kind AS s_kind, s.name AS s_name, r.rel, d.kind AS d_kind, d.name AS d_name,
       r.fact, r.run_id, r.message_seq, r.created_at
FROM relations r JOIN entities s ON s.id = r.src JOIN entities d ON d.id = r.dst
"""


def _edge(row: dict[str, object]) -> Edge:
    return Edge(
        (str(row["s_kind"]), str(row["s_name"])),
        str(row["rel"]),
        (str(row["d_kind"]), str(row["d_name"])),
        row["fact"],  # type: ignore[arg-type]
        row["run_id"],  # type: ignore[arg-type]
        row["message_seq"],  # type: ignore[arg-type]
        row["created_at"],  # type: ignore[arg-type]
    )


class MemoryGraph:
    """Graph queries and writes over the store's connection pool."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    async def entity(self, kind: str, name: str, attrs: dict[str, object] | None = None) -> int:
        """Id of entity ``(kind, name)``, created if new (attributes merged if given)."""
        if kind not in KINDS:
            raise ValueError(f"unknown entity kind {kind!r}; known: {list(KINDS)}")
        name, attrs = redact_text(name), mask_secrets(attrs or {})
        async with self._store._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO entities (kind, name, attrs) VALUES (%s, %s, %s) "
                "ON CONFLICT (kind, name) DO UPDATE SET attrs = entities.attrs || EXCLUDED.attrs "
                "RETURNING id",
                (kind, name, Jsonb(attrs or {})),
            )
            row = await cur.fetchone()
        if row is None:  # RETURNING always yields the row; None means the driver broke its promise
            raise RuntimeError("INSERT ... RETURNING id returned no row")
        return int(row[0])

    async def relate(
        self,
        src: EntityRef,
        rel: str,
        dst: EntityRef,
        *,
        fact: str | None = None,
        run_id: str | None = None,
        message_seq: int | None = None,
    ) -> int:
        """Record ``src -rel-> dst`` with provenance (run and message); returns the relation id."""
        if rel not in RELS:
            raise ValueError(f"unknown relation {rel!r}; known: {list(RELS)}")
        fact = redact_text(fact) if fact else fact
        s, d = await self.entity(*src), await self.entity(*dst)
        async with self._store._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO relations (src, rel, dst, fact, run_id, message_seq) "
                "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (s, rel, d, fact, run_id, message_seq),
            )
            row = await cur.fetchone()
        if row is None:  # RETURNING always yields the row; None means the driver broke its promise
            raise RuntimeError("INSERT ... RETURNING id returned no row")
        return int(row[0])

    async def record(
        self, relations: Sequence[Relation], *, attrs: Mapping[EntityRef, dict[str, object]] | None = None
    ) -> int:
        """Record many relations in ONE transaction; returns how many were new.

        Idempotent: a relation identical to a stored one (same ends, rel, run and message) is
        skipped, so recording the facts of a run twice (e.g. once more after a resume) adds
        nothing. ``attrs`` are merged into the entities' attributes (e.g. a run's status).
        """
        for r in relations:
            if r.rel not in RELS:
                raise ValueError(f"unknown relation {r.rel!r}; known: {list(RELS)}")
        relations = [_safe(r) for r in relations]
        attrs = {_safe_ref(ref): mask_secrets(a) for ref, a in (attrs or {}).items()}
        # sorted: concurrent writers lock entity rows in the same order (no deadlock)
        refs = sorted({*(attrs or {}), *(e for r in relations for e in (r.src, r.dst))})
        for kind, _ in refs:
            if kind not in KINDS:
                raise ValueError(f"unknown entity kind {kind!r}; known: {list(KINDS)}")
        if not refs:
            return 0
        ids: dict[EntityRef, int] = {}
        added = 0
        async with self._store._connection() as conn, conn.transaction():
            for ref in refs:
                cur = await conn.execute(
                    "INSERT INTO entities (kind, name, attrs) VALUES (%s, %s, %s) "
                    "ON CONFLICT (kind, name) DO UPDATE SET attrs = entities.attrs || EXCLUDED.attrs "
                    "RETURNING id",
                    (ref[0], ref[1], Jsonb((attrs or {}).get(ref, {}))),
                )
                row = await cur.fetchone()
                if row is None:
                    raise RuntimeError("INSERT ... RETURNING id returned no row")
                ids[ref] = int(row[0])
            for r in relations:
                cur = await conn.execute(
                    "INSERT INTO relations (src, rel, dst, fact, run_id, message_seq) "
                    "SELECT %(s)s, %(rel)s, %(d)s, %(fact)s, %(run)s, %(seq)s WHERE NOT EXISTS ("
                    " SELECT 1 FROM relations WHERE src = %(s)s AND rel = %(rel)s AND dst = %(d)s"
                    " AND run_id IS NOT DISTINCT FROM %(run)s AND message_seq IS NOT DISTINCT FROM %(seq)s)",
                    {
                        "s": ids[r.src],
                        "rel": r.rel,
                        "d": ids[r.dst],
                        "fact": r.fact,
                        "run": r.run_id,
                        "seq": r.message_seq,
                    },
                )
                added += cur.rowcount
        return added

    async def find(self, ref: EntityRef | str) -> list[EntityRef]:
        """Entities matching a ``(kind, name)`` or a bare name of any kind."""
        where, args = ("kind = %s AND name = %s", ref) if isinstance(ref, tuple) else ("name = %s", (ref,))
        async with self._store._connection() as conn:
            cur = await conn.execute(f"SELECT kind, name FROM entities WHERE {where} ORDER BY kind", args)
            return [(str(k), str(n)) for k, n in await cur.fetchall()]

    async def neighbours(self, ref: EntityRef, *, rel: str | None = None, limit: int = 50) -> list[Edge]:
        """Relations touching ``ref`` in either direction, newest first."""
        sql = (
            _EDGE_SELECT
            + " WHERE ((s.kind = %(k)s AND s.name = %(n)s) OR (d.kind = %(k)s AND d.name = %(n)s))"
            + (" AND r.rel = %(rel)s" if rel else "")
            + " ORDER BY r.created_at DESC, r.id DESC LIMIT %(limit)s"
        )
        async with self._store._connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, {"k": ref[0], "n": ref[1], "rel": rel, "limit": limit})
            return [_edge(r) for r in await cur.fetchall()]

    async def recent_facts(self, ref: EntityRef, limit: int = 10) -> list[Edge]:
        """The newest relations about ``ref`` that carry a fact."""
        return [e for e in await self.neighbours(ref, limit=limit * 3) if e.fact][:limit]

    async def paths(
        self, src: EntityRef, dst: EntityRef, *, max_depth: int = 4, limit: int = 10
    ) -> list[list[Edge]]:
        """Shortest-first paths from ``src`` to ``dst`` following relations in either direction."""
        sql = """
        WITH RECURSIVE
        e AS (  -- undirected view of the relations
            SELECT id, src AS a, dst AS b FROM relations
            UNION ALL SELECT id, dst AS a, src AS b FROM relations
        ),
        walk(node, rels, nodes, depth) AS (
            SELECT x.id, ARRAY[]::bigint[], ARRAY[x.id], 0
            FROM entities x WHERE x.kind = %(sk)s AND x.name = %(sn)s
            UNION ALL
            SELECT e.b, w.rels || e.id, w.nodes || e.b, w.depth + 1
            FROM walk w JOIN e ON e.a = w.node
            WHERE w.depth < %(depth)s AND NOT e.b = ANY (w.nodes)
        )
        SELECT w.rels FROM walk w JOIN entities t ON t.id = w.node
        WHERE t.kind = %(dk)s AND t.name = %(dn)s AND w.depth > 0
        ORDER BY w.depth LIMIT %(limit)s
        """
        params = {"sk": src[0], "sn": src[1], "dk": dst[0], "dn": dst[1], "depth": max_depth, "limit": limit}
        async with self._store._connection() as conn:
            cur = await conn.execute(sql, params)
            rel_paths = [list(r[0]) for r in await cur.fetchall()]
            if not rel_paths:
                return []
            ids = sorted({i for p in rel_paths for i in p})
            dcur = conn.cursor(row_factory=dict_row)
            await dcur.execute(
                _EDGE_SELECT.replace("SELECT ", "SELECT r.id, ", 1) + " WHERE r.id = ANY(%s)", (ids,)
            )
            by_id = {int(r["id"]): _edge(r) for r in await dcur.fetchall()}
        return [[by_id[i] for i in p] for p in rel_paths]
