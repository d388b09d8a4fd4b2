"""The event spool: while Postgres is down events go to a bounded local file and are flushed in
order once it is back; a full spool drops (counted) without crashing; a spool file left by a
process that died is flushed by the next writer, exactly once. Scripted store (see test_writer);
real Postgres: tests/infra/test_pg_outage.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from alina.memory_store.runs import StoreUnavailableError
from alina.memory_store.spool import claim_orphans
from alina.memory_store.writer import EventWriter
from alina.monitoring import metrics
from tests.memory.test_writer import FakeStore, seqs, until, writer

REPO = Path(__file__).resolve().parents[2]


def dropped_metric() -> float:
    return metrics.REGISTRY.get_sample_value("alina_events_dropped_total", {"reason": "spool_full"}) or 0.0


def spool_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_events_wait_in_the_spool_while_the_store_is_down_and_are_flushed_in_order(
    tmp_path: Path,
) -> None:
    store = FakeStore()
    store.fail = True
    w = writer(store, batch_size=10, flush_interval_s=0, spool_dir=tmp_path)
    for i in range(30):
        await w.emit("tick", {"i": i}, run_id="r")
    await until(lambda: w.spool_path is not None and w.pending == 30 and w._queue.empty(), "spooled")
    path = w.spool_path
    assert path is not None and path.parent == tmp_path and path.name.startswith(f"events-{os.getpid()}-")
    lines = spool_lines(path)
    assert [json.loads(str(x["payload"]))["i"] for x in lines] == list(range(30))  # in order, on disk
    assert len({x["id"] for x in lines}) == 30
    store.fail = False
    for i in range(30, 35):  # emitted after the outage: written after the spooled ones
        await w.emit("tick", {"i": i}, run_id="r")
    await w.close()
    assert seqs(store.rows) == list(range(35)) and w.pending == 0 and w.written == 35
    assert not path.exists()  # all written: the spool file is gone


async def test_a_full_spool_drops_and_counts_events_and_never_crashes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FakeStore()
    store.fail = True
    before = dropped_metric()
    w = writer(store, batch_size=10, flush_interval_s=0, spool_dir=tmp_path, spool_max_bytes=2_000)
    with caplog.at_level(logging.ERROR, logger="alina.memory_store.spool"):
        for i in range(100):
            await w.emit("tick", {"i": i})
        with pytest.raises(StoreUnavailableError):
            await w.flush()
    assert w.spool_path is not None and w.spool_path.stat().st_size <= 2_000
    kept = w.pending
    assert 0 < kept < 100 and w.dropped == 100 - kept
    assert dropped_metric() - before == w.dropped
    assert sum("is full" in r.getMessage() for r in caplog.records) == 1  # logged once
    store.fail = False
    await w.close()
    assert seqs(store.rows) == list(range(kept))  # the oldest events kept, in order


DEAD_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from contextlib import asynccontextmanager
    from pathlib import Path

    from alina.memory_store.runs import StoreUnavailableError
    from alina.memory_store.writer import EventWriter

    class Down:
        @asynccontextmanager
        async def _connection(self):
            raise StoreUnavailableError("cannot reach Postgres (scripted)")
            yield

    async def main():
        w = EventWriter(Down(), spool_dir=Path(sys.argv[1]), flush_interval_s=0)
        for i in range(int(sys.argv[2])):
            await w.emit("tick", {"i": i}, run_id="dead")
        try:
            await w.flush()
        except StoreUnavailableError:
            pass
        print(w.spool_path, flush=True)
        os._exit(0)  # dies without closing anything: the file stays, its lock goes with the process

    asyncio.run(main())
    """
)


def dead_writer(spool_dir: Path, n: int) -> Path:
    """Run a writer in another process that spools ``n`` events and dies; its spool file."""
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = subprocess.run(
        [sys.executable, "-c", DEAD_WRITER, str(spool_dir), str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    path = Path(out.stdout.strip())
    assert path.exists() and len(path.read_text().splitlines()) == n
    return path


async def test_a_spool_left_by_a_dead_process_is_flushed_once_by_the_next_writer(tmp_path: Path) -> None:
    busy = FakeStore()
    busy.fail = True
    holder = writer(busy, flush_interval_s=0, spool_dir=tmp_path)  # a live process's spool file
    await holder.emit("tick", {"i": -1})
    with pytest.raises(StoreUnavailableError):
        await holder.flush()
    held = holder.spool_path
    path = dead_writer(tmp_path, 25)
    store = FakeStore()
    w = writer(store, batch_size=10, flush_interval_s=0, spool_dir=tmp_path)
    await w.start()
    assert w.pending == 25  # the dead process's file is claimed; the live one (locked) is not
    await w.close()
    assert seqs(store.rows) == list(range(25)) and {r[0] for r in store.rows} == {"dead"}
    assert not path.exists() and held is not None and held.exists()
    again = writer(store, flush_interval_s=0, spool_dir=tmp_path)
    await again.start()
    assert again.pending == 0
    await again.close()
    assert len(store.rows) == 25  # nothing flushed twice
    busy.fail = False
    await holder.close()
    assert seqs(busy.rows) == [-1] and not held.exists()


async def test_a_flush_cut_midway_is_redone_by_another_writer_without_duplicates(tmp_path: Path) -> None:
    path = dead_writer(tmp_path, 25)

    class DiesAfterOneBatch(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.batches = 0

        def _connection(self):  # type: ignore[no-untyped-def]
            self.batches += 1
            self.fail = self.batches > 1
            return super()._connection()

    store = DiesAfterOneBatch()
    first = writer(store, batch_size=10, flush_interval_s=0, spool_dir=tmp_path)
    await first.start()
    with pytest.raises(StoreUnavailableError):
        await first.flush()
    assert seqs(store.rows) == list(range(10))
    assert first._task is not None
    first._task.cancel()  # the process dies mid-flush: its lock goes, the file stays
    for spool in first._orphans:
        spool.close()
    claimed = claim_orphans(tmp_path, 1 << 20)
    assert [s.path for s in claimed] == [path]  # claimable again...
    for spool in claimed:
        spool.close()  # ...and released (this test only looked)
    store.fail, store.batches = False, -100
    second = writer(store, batch_size=10, flush_interval_s=0, spool_dir=tmp_path)
    await second.start()
    assert second.pending == 25  # the whole file: the writer cannot know how far the first got
    await second.close()
    assert seqs(store.rows) == list(range(25))  # the first 10 again: ON CONFLICT skips them
    assert not path.exists()


async def test_alinas_writer_spools_under_the_data_dir_within_the_configured_bound(tmp_path: Path) -> None:
    from alina.config import AlinaConfig

    config = AlinaConfig(paths={"data_dir": str(tmp_path)}, resilience={"spool_max_mb": 0.001})
    store = FakeStore()
    store.fail = True
    w = EventWriter.from_config(store, config)  # type: ignore[arg-type]
    for i in range(50):
        await w.emit("tick", {"i": i})
    with pytest.raises(StoreUnavailableError):
        await w.flush()
    assert w.spool_path is not None and w.spool_path.parent == tmp_path / "spool"
    assert w.spool_path.stat().st_size <= 1048 and w.dropped > 0  # 0.001 MiB
    store.fail = False
    await w.close()
