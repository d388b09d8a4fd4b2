"""Retention in Postgres: run details, the message cap, events and checkpoints, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from alina._errors import error_line
from alina.memory_store.database import is_connection_error, redact_dsn
from alina.memory_store.retention._report import DAY_S, BackendReport, fmt_days

if TYPE_CHECKING:
    from alina.config import RetentionConfig

__all__ = ["prune_postgres"]

_LOCK_TIMEOUT = "10s"
# A row of a run that is running right now: never deleted (alias t = the table being pruned).
_NOT_RUNNING = "NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = t.run_id AND r.status = 'running')"
# The run of this row finished before the cutoff (parameter: the TTL in seconds).
_OLD_FINISHED_RUN = (
    "t.run_id IN (SELECT r.id FROM runs r WHERE r.status <> 'running' "
    "AND coalesce(r.finished_at, r.started_at) < now() - %s * interval '1 second')"
)
_RUN_DETAIL_TABLES = ("messages", "tool_calls", "routing_decisions", "events")


class _PgPruner:
    def __init__(
        self, conn: psycopg.AsyncConnection[Any], rc: RetentionConfig, report: BackendReport
    ) -> None:
        self.conn, self.rc, self.report = conn, rc, report
        self.tables: set[str] = set()

    async def load_tables(self) -> None:
        cur = await self.conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        )
        self.tables = {row[0] for row in await cur.fetchall()}

    def has(self, *tables: str) -> bool:
        missing = [t for t in tables if t not in self.tables]
        for t in missing:
            note = f"table {t} does not exist (schema not migrated? run `alina up`): skipped"
            if note not in self.report.notes:
                self.report.notes.append(note)
        return not missing

    async def count(self, query: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(query, params)
        row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    async def delete(
        self,
        table: str,
        where: str,
        params: Sequence[Any] = (),
        *,
        order_by: str | None = None,
        limit: int | None = None,
    ) -> int:
        """Delete the rows of ``table`` (alias ``t``) matching ``where``, ``batch_size`` per
        statement; with ``order_by``/``limit``, at most ``limit`` rows, in that order."""
        total = 0
        while limit is None or total < limit:
            n = self.rc.batch_size if limit is None else min(self.rc.batch_size, limit - total)
            query = sql.SQL(
                "DELETE FROM {t} t WHERE t.ctid = ANY(ARRAY(SELECT t.ctid FROM {t} t WHERE {w}{o} LIMIT %s)) "
                "AND {w}"
            ).format(
                t=sql.Identifier(table),
                w=sql.SQL(where),
                o=sql.SQL(f" ORDER BY {order_by}" if order_by else ""),
            )
            cur = await self.conn.execute(query, (*params, n, *params))
            if cur.rowcount <= 0:
                break
            total += cur.rowcount
        return total

    # -- rules -----------------------------------------------------------------------------------
    async def run_details_ttl(self) -> None:
        days = self.rc.messages_ttl_days
        if days is None or not self.has("runs"):
            return
        rule = f"run finished > {fmt_days(days)} ago"
        for table in _RUN_DETAIL_TABLES:
            if not self.has(table):
                continue
            where, params = f"{_OLD_FINISHED_RUN} AND {_NOT_RUNNING}", [days * DAY_S]
            if table == "tool_calls":  # tool calls made outside any run age on their own
                where = (
                    f"(({_OLD_FINISHED_RUN}) OR (t.run_id IS NULL "
                    "AND t.created_at < now() - %s * interval '1 second')) AND " + _NOT_RUNNING
                )
                params = [days * DAY_S, days * DAY_S]
            self.report.add(table, rule, await self.delete(table, where, params))

    async def message_cap(self) -> None:
        cap = self.rc.max_messages
        if cap is None or not self.has("runs", "messages"):
            return
        excess = await self.count("SELECT count(*) FROM messages") - cap
        rule = f"over {cap} messages, oldest finished runs first"
        if excess <= 0:
            for table in _RUN_DETAIL_TABLES:
                if table in self.tables:
                    self.report.add(table, rule, 0)
            return
        chosen: list[str] = []
        covered, offset, page = 0, 0, 1000
        while covered < excess:
            cur = await self.conn.execute(
                "SELECT r.id, (SELECT count(*) FROM messages m WHERE m.run_id = r.id) FROM runs r "
                "WHERE r.status <> 'running' ORDER BY coalesce(r.finished_at, r.started_at), r.id "
                "LIMIT %s OFFSET %s",
                (page, offset),
            )
            rows = await cur.fetchall()
            if not rows:
                break
            offset += len(rows)
            for run_id, n in rows:
                if n and covered < excess:
                    chosen.append(run_id)
                    covered += int(n)
        if covered < excess:
            self.report.notes.append(
                f"messages stay over max_messages ({cap}) by {excess - covered}: they belong to running runs"
            )
        totals = dict.fromkeys(_RUN_DETAIL_TABLES, 0)
        for s in range(0, len(chosen), 500):
            ids = chosen[s : s + 500]
            for table in _RUN_DETAIL_TABLES:
                if table in self.tables:
                    totals[table] += await self.delete(table, f"t.run_id = ANY(%s) AND {_NOT_RUNNING}", [ids])
        for table, n in totals.items():
            if table in self.tables:
                self.report.add(table, rule, n)

    async def events(self) -> None:
        if not self.has("events"):
            return
        days, cap = self.rc.events_ttl_days, self.rc.max_events
        if days is not None:
            n = await self.delete(
                "events",
                f"t.created_at < now() - %s * interval '1 second' AND (t.run_id IS NULL OR {_NOT_RUNNING})",
                [days * DAY_S],
            )
            self.report.add("events", f"older than {fmt_days(days)}", n)
        if cap is not None:
            excess = await self.count("SELECT count(*) FROM events") - cap
            n = 0
            if excess > 0:
                n = await self.delete(
                    "events", f"(t.run_id IS NULL OR {_NOT_RUNNING})", order_by="t.id", limit=excess
                )
                if n < excess:
                    self.report.notes.append(
                        f"events stay over max_events ({cap}) by {excess - n}: they belong to running runs"
                    )
            self.report.add("events", f"over {cap} events, oldest first", n)

    async def checkpoints(self) -> None:
        if not self.has("checkpoints"):
            return
        keep, days = self.rc.checkpoints_keep_per_run, self.rc.checkpoints_ttl_days
        # "Not the latest" is spelled into every condition: a newer checkpoint of the run exists.
        if keep is not None:
            n = await self.delete(
                "checkpoints",
                "(SELECT count(*) FROM checkpoints n WHERE n.run_id = t.run_id AND n.turn > t.turn) >= %s "
                f"AND {_NOT_RUNNING}",
                [keep],
            )
            self.report.add("checkpoints", f"beyond the last {keep} per run", n)
        if days is not None:
            n = await self.delete(
                "checkpoints",
                "t.created_at < now() - %s * interval '1 second' AND EXISTS (SELECT 1 FROM checkpoints n "
                f"WHERE n.run_id = t.run_id AND n.turn > t.turn) AND {_NOT_RUNNING}",
                [days * DAY_S],
            )
            self.report.add("checkpoints", f"older than {fmt_days(days)}, not a run's latest", n)

    async def run_all(self) -> None:
        await self.load_tables()
        await self.run_details_ttl()
        await self.message_cap()
        await self.events()
        await self.checkpoints()


async def prune_postgres(rc: RetentionConfig, dsn: str, dry_run: bool, timeout_s: float) -> BackendReport:
    report = BackendReport("postgres", redact_dsn(dsn))
    try:
        conn = await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=max(2, int(timeout_s)), autocommit=True
        )
    except psycopg.OperationalError as exc:
        report.status, report.error = "unavailable", error_line(exc)
        return report
    pruner = _PgPruner(conn, rc, report)
    try:
        # Wait at most this long for a lock: better to skip a prune than to queue writers behind it.
        await conn.execute(f"SET lock_timeout = '{_LOCK_TIMEOUT}'")
        if dry_run:
            async with conn.transaction(force_rollback=True):
                await pruner.run_all()
        else:
            await pruner.run_all()
    except psycopg.Error as exc:
        report.status = "unavailable" if is_connection_error(exc) else "error"
        report.error = error_line(exc)
    finally:
        await conn.close()
    return report
