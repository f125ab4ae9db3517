"""Killing a service for real: at chosen points of its progress through a stream (polled),
or at a named point of its code (aimed, through shared/platform/faults.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence

from shared.platform import faults
from shared.platform.processes import ServiceProcess

POLL_S = 0.02


async def kill_at_progress(service: ServiceProcess, progress: Callable[[], Awaitable[int]],
                           points: Sequence[int], timeout_s: float) -> list[int]:
    """Start the service and SIGKILL it once `progress()` reaches each point in turn;
    return the progress seen at each kill (so a test can check they were mid-stream)."""
    killed_at = []
    for point in sorted(points):
        service.start()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while (seen := await progress()) < point:
            assert asyncio.get_running_loop().time() < deadline, f"{service.name} made no progress"
            await asyncio.sleep(POLL_S)
        service.kill()
        killed_at.append(seen)
    return killed_at


async def run_until_fault(service: ServiceProcess, point: str, timeout_s: float) -> None:
    """Start the service with STAFET_FAULT_POINT aimed at `point` and wait until it has
    killed itself there (SIGKILL, its own marker line in its log)."""
    aimed = ServiceProcess(service.name, {**service.env, faults.ENVIRONMENT_VARIABLE: point}, service.log_path)
    aimed.start()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while aimed.running():
        assert asyncio.get_running_loop().time() < deadline, f"{service.name} never reached {point}"
        await asyncio.sleep(POLL_S)
    assert aimed.process is not None
    assert aimed.process.returncode == -signal.SIGKILL, f"{service.name} ended otherwise: {aimed.process.returncode}"
    name = point.partition(":")[0]
    assert f"{faults.MARKER} {name}" in service.log_path.read_text(), f"{service.name} died, but not at {point}"
