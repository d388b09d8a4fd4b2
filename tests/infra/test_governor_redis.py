"""The governor's cross-process cap on a real Redis: leases cap calls across processes, a
SIGKILLed holder's lease expires, and a Redis outage falls back to the process-local cap."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from autogen_core.models import UserMessage

from alina.models import Governor, ResilientClient
from alina.monitoring.metrics import REGISTRY
from tests.unit.test_governor import Gate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ASK = [UserMessage(content="hi", source="user")]
HANG_GUARD_S = 60.0  # only so a broken governor fails the test instead of hanging it

HOLDER = """
import asyncio, sys
from alina.models._governor import Governor

async def main():
    gov = Governor(1, name=sys.argv[2], redis_url=sys.argv[1], lease_ttl_s=float(sys.argv[3]))
    async with gov.slot("chat"):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_leases_cap_calls_across_governors_sharing_a_server(redis_service) -> None:
    name = f"t-shared-{uuid.uuid4().hex[:8]}"
    # Two governors stand for two processes: each would allow 2, together they may run only 2.
    govs = [
        Governor(2, name=name, redis_url=redis_service.url, lease_ttl_s=5, poll_s=0.005) for _ in range(2)
    ]
    model = Gate()  # calls run until released: the cap, not the scheduler, decides how many run
    clients = [ResilientClient(f"a{i}", model, governor=govs[i % 2]) for i in range(8)]
    calls = asyncio.gather(*(c.create(ASK) for c in clients))
    for _ in range(int(HANG_GUARD_S / 0.01)):  # two leases are free: two calls get in
        if model.running >= 2:
            break
        await asyncio.sleep(0.01)
    for _ in range(20):  # the other six keep asking for a lease meanwhile, and must not get one
        await asyncio.sleep(0.01)
    assert model.running == 2
    model.release.set()
    await asyncio.wait_for(calls, HANG_GUARD_S)
    assert model.max_running == 2
    assert await govs[0].leases() == 0  # every lease released
    for g in govs:
        await g.close()


async def test_a_sigkilled_holders_lease_expires_and_the_slot_is_taken(redis_service) -> None:
    name, ttl = f"t-kill-{uuid.uuid4().hex[:8]}", 2.0
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        redis_service.url,
        name,
        str(ttl),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stderr is not None
        line = await asyncio.wait_for(holder.stdout.readline(), HANG_GUARD_S)
        assert line.strip() == b"held", line + await holder.stderr.read()
        gov = Governor(1, name=name, redis_url=redis_service.url, lease_ttl_s=ttl, poll_s=0.05)
        waiter = asyncio.create_task(_hold_once(gov))
        await asyncio.sleep(1.5 * ttl)  # longer than the TTL: the live holder's heartbeat renews it
        assert await gov.leases() == 1 and not waiter.done()
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        leases_while_held = await asyncio.wait_for(waiter, HANG_GUARD_S)  # the dead lease expired
        assert leases_while_held == 1  # ours, the dead holder's is gone
        assert await gov.leases() == 0
        await gov.close()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def _hold_once(gov: Governor) -> int:
    async with gov.slot("trading"):
        return await gov.leases()


async def test_redis_down_falls_back_to_the_local_cap_and_counts_it(free_port) -> None:
    name = f"t-down-{uuid.uuid4().hex[:8]}"
    gov = Governor(2, name=name, redis_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    model = Gate(hold=False)
    clients = [ResilientClient(f"a{i}", model, governor=gov) for i in range(6)]
    await asyncio.wait_for(asyncio.gather(*(c.create(ASK) for c in clients)), HANG_GUARD_S)
    assert model.max_running == 2  # the process-local cap still holds
    fallbacks = REGISTRY.get_sample_value("alina_governor_redis_fallbacks_total", {"governor": name})
    assert fallbacks == 6  # every admission counted (the first failure, then the cool-down)
    await gov.close()
