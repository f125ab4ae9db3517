"""What the benchmark reads about the machine and the processes it runs: CPU time per
process from /proc (user + system, steadier than rates on a shared machine), the load
average over the run, and the versions and commit a result belongs to."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from shared.platform.settings import REPO_ROOT

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and of its threads (0.0 once it is gone).

    Fields 14 and 15 of /proc/<pid>/stat, counted after the command name's closing
    parenthesis (a name may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_S


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid`, of its children that ended (which it waited for: fields 16
    and 17) and of its live children. PostgreSQL's work is done in backends that come
    and go with connections, all children of the postmaster."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    total = sum(int(f) for f in fields[11:15])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            child = _stat_fields(int(entry.name))
            if child is not None and child[1] == str(pid):
                total += sum(int(f) for f in child[11:15])
    return total / _TICKS_PER_S


@dataclass
class Servers:
    """The Kafka broker's and PostgreSQL's CPU, which every stage also costs: on a shared
    machine they take cores the services would use."""

    pids: dict[str, int] = field(default_factory=dict)

    def cpu_s(self) -> dict[str, float]:
        return {name: process_tree_cpu_s(pid) for name, pid in self.pids.items()}


def own_cpu_s() -> float:
    """This process's user + system CPU seconds (the in-process stages: raw, rebuilds)."""
    times = os.times()
    return times.user + times.system


def per_100k(cpu_s: float, records: int) -> float:
    return cpu_s * 100_000 / records if records else 0.0


@dataclass
class LoadSampler:
    """The 1-minute load average, sampled every `every_s` while the run lasts."""

    every_s: float = 5.0
    samples: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            await asyncio.sleep(self.every_s)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.samples:
            return {}
        return {"min": min(self.samples), "mean": sum(self.samples) / len(self.samples),
                "max": max(self.samples), "samples": len(self.samples)}


def git_commit() -> str:
    """HEAD's hash, with `+dirty` when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in ("aiokafka", "faststream", "asyncpg", "pydantic", "cryptography"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_line(record: dict[str, Any], size: str) -> str:
    """The last line of a benchmark's table: where and under what load it ran, and its size."""
    machine, load = record["machine"], record["load_average_1m"]
    return (f"commit {record['commit'][:12]}; {machine['cores']} cores ({machine['cpu']}); Python "
            f"{machine['python']}, Kafka {machine['kafka']}, PostgreSQL {machine['postgresql']}; load average "
            f"(1 min) during the run: mean {load.get('mean', 0):.1f}, max {load.get('max', 0):.1f}; {size}")
