"""Injecting the schedule's faults into real processes, and supervising the services.

Every blocking step (waiting for a process to exit, starting the broker) runs in a
thread, so the load and the progress lines go on while a fault is in progress.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.chaos.schedule import Fault
from shared.platform.processes import ServiceProcess
from shared.platform.stack import LocalStack, StackError

SUPERVISE_EVERY_S = 1.0
STARTED_LINE = "FastStream app started successfully"
START_ATTEMPTS = 3


class ServiceTarget:
    def __init__(self, process: ServiceProcess) -> None:
        self.process = process
        # Return codes of SIGTERMs (0: a clean, in-time exit), and whether the process
        # had finished starting: one SIGTERMed while still importing has nothing in hand
        # and dies of the signal, as any process does before it installs its handlers.
        self.exits: list[tuple[int, bool]] = []
        self._log_mark = 0

    def kill(self) -> None:
        self.process.kill()

    def term(self) -> None:
        started = STARTED_LINE in self._log_since_start()
        self.process.stop()  # SIGTERM; SIGKILL only if it outlives the grace period
        if self.process.process is not None:
            self.exits.append((self.process.process.returncode, started))

    def _log_since_start(self) -> str:
        try:
            with self.process.log_path.open("rb") as log:
                log.seek(self._log_mark)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def start(self) -> None:
        self._log_mark = self.process.log_path.stat().st_size if self.process.log_path.exists() else 0
        self.process.start()

    def _signal(self, signum: int) -> None:
        if self.process.process is not None and self.process.running():
            os.killpg(self.process.process.pid, signum)


class KafkaTarget:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def kill(self) -> None:
        self.stack.stop_kafka(kill=True)

    def term(self) -> None:
        self.stack.stop_kafka(kill=False)

    def pause(self) -> None:
        self.stack.signal_kafka(signal.SIGSTOP)

    def resume(self) -> None:
        self.stack.signal_kafka(signal.SIGCONT)

    def start(self) -> None:
        # A broker SIGKILLed moments after it registered can be refused by its own
        # controller (DUPLICATE_BROKER_REGISTRATION) until the old session expires; on a
        # busy machine that outlasts the start timeout. Kill the stuck one and start again.
        for attempt in range(START_ATTEMPTS):
            try:
                self.stack.start_kafka()
                return
            except StackError:
                if attempt + 1 == START_ATTEMPTS:
                    raise
                self.stack.stop_kafka(kill=True)


class PostgresTarget:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def kill(self) -> None:
        self.stack.stop_postgres(mode="immediate")

    def term(self) -> None:
        self.stack.stop_postgres(mode="fast")

    def pause(self) -> None:
        self.stack.signal_postgres(signal.SIGSTOP)

    def resume(self) -> None:
        self.stack.signal_postgres(signal.SIGCONT)

    def start(self) -> None:
        self.stack.start_postgres()


Target = ServiceTarget | KafkaTarget | PostgresTarget


@dataclass
class Injector:
    targets: dict[str, Target]
    say: Callable[[str], None]
    injected: list[Fault] = field(default_factory=list)
    down: set[str] = field(default_factory=set)  # services we stopped on purpose
    unplanned_exits: list[str] = field(default_factory=list)

    async def run(self, schedule: tuple[Fault, ...], started: float) -> None:
        """Inject each fault at its time; return when the last one has been undone."""
        self._t0 = started
        pending = []
        for fault in schedule:
            delay = started + fault.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(self.inject(fault)))
        await asyncio.gather(*pending)

    async def inject(self, fault: Fault) -> None:
        target = self.targets[fault.target]
        # The schedule allows a few seconds for a restart; a broker that took longer (a slow
        # start on a busy machine) is waited for, so two faults never overlap on one target.
        late = time.monotonic()
        while fault.target in self.down:  # noqa: ASYNC110 - polled like the supervisor
            await asyncio.sleep(SUPERVISE_EVERY_S)
        if time.monotonic() - late > SUPERVISE_EVERY_S:
            self.say(f"  (fault on {fault.target} delayed {time.monotonic() - late:.0f}s: still restarting)")
        self.say(f"  fault  {fault.describe()}")
        self.down.add(fault.target)
        try:
            if fault.action == "pause":
                await asyncio.to_thread(target.pause)
                await asyncio.sleep(fault.hold_s)
                await asyncio.to_thread(target.resume)
            else:
                await asyncio.to_thread(target.kill if fault.action == "kill" else target.term)
                await asyncio.sleep(fault.hold_s)
                await asyncio.to_thread(target.start)
        finally:
            self.down.discard(fault.target)
        self.injected.append(fault)
        self.say(f"  undone {fault.target} ({fault.action}) at t+{time.monotonic() - self._t0:.1f}s")

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart a service that exited without being told to, as Kubernetes would; each
        such exit is recorded, because a service must outlive every fault here."""
        while not stop.is_set():
            for name, target in self.targets.items():
                if isinstance(target, ServiceTarget) and name not in self.down and not target.process.running():
                    code = target.process.process.returncode if target.process.process else None
                    self.unplanned_exits.append(f"{name} (exit {code})")
                    self.say(f"  !! {name} exited on its own (code {code}); restarting it; "
                             f"see {target.process.log_path}")
                    await asyncio.to_thread(target.start)
            await asyncio.sleep(SUPERVISE_EVERY_S)

    _t0: float = 0.0

    def terms(self) -> list[tuple[str, int, bool]]:
        """(service, exit code, had it finished starting) for every SIGTERM."""
        return [(name, code, started) for name, target in self.targets.items()
                if isinstance(target, ServiceTarget) for code, started in target.exits]
