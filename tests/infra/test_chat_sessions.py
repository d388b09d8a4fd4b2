"""Chat sessions in the real Postgres (migration 0017): create, append runs, /reset, find the
latest or by id prefix, list; a pruned run leaves its session."""

from __future__ import annotations

import psycopg
import pytest

from alina.chat.sessions import ChatSessions, SessionNotFound

pytestmark = pytest.mark.integration


def _runs(dsn: str, *ids: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in ids:
            conn.execute("INSERT INTO runs (id, task) VALUES (%s, %s)", (i, f"task {i}"))


async def test_sessions_keep_their_runs_in_order_and_resume_by_latest_or_prefix(fresh_pg_dsn: str) -> None:
    sessions = ChatSessions(fresh_pg_dsn)
    await sessions.open()  # applies the migrations, 0017 included
    with pytest.raises(SessionNotFound, match="no chat session to resume yet"):
        await sessions.get(None)
    _runs(fresh_pg_dsn, "r1", "r2", "r3")
    first = await sessions.create()
    await sessions.add_run(first, "r1", "What is the  BTC/USDT\nprice?")
    await sessions.add_run(first, "r2", "And the trend?")
    await sessions.reset(first)
    await sessions.add_run(first, "r3", "Is the system healthy?")
    second = await sessions.create()  # left before its first task

    assert (await sessions.get(None)).id == first.id  # the latest with a task
    assert (await sessions.get(second.id)).runs == []  # still there by its id
    again = await sessions.get(first.id[:6])  # a unique prefix is enough
    assert again.title == "What is the BTC/USDT price?"
    assert again.runs == [(1, "r1"), (2, "r2"), (3, "r3")] and again.reset_seq == 2
    assert again.context_runs == ["r3"]  # before /reset: transcript only
    with pytest.raises(SessionNotFound, match="no chat session 'ffff'"):
        await sessions.get("ffff")

    listed = {r["id"]: r["runs"] for r in await sessions.list()}
    assert listed == {first.id: 3}
    with psycopg.connect(fresh_pg_dsn, autocommit=True) as conn:  # retention deletes a run
        conn.execute("DELETE FROM runs WHERE id = 'r2'")
    assert [r for _, r in (await sessions.get(first.id)).runs] == ["r1", "r3"]
