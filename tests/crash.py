"""Killing a service for real, at chosen points of its progress through a stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from shared.processes import ServiceProcess

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
