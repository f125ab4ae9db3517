"""The fault schedule: drawn from a seed, so a failing run is replayed by its seed.

Pure: no processes, no clock. Faults arrive at exponentially distributed gaps (a mean
gap of `mean_gap_s`); each picks a target that is not already under a fault and an
action:

  kill   SIGKILL (PostgreSQL: `pg_ctl stop -m immediate`, its crash), restart after `hold_s`
  pause  SIGSTOP, SIGCONT after `hold_s` (a long GC pause, a frozen VM)
  term   SIGTERM (PostgreSQL: a fast shutdown), restart after `hold_s`

At most one of the two servers (broker, database) is down at a time, but a service
fault may overlap a server fault: a service restarted during a broker outage is
exactly the case that used to stay down.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SERVICE_TARGETS = ("ingest-1", "ingest-2", "verifier-1", "verifier-2", "ledger")
SERVER_TARGETS = ("kafka", "postgres")
TARGETS = SERVICE_TARGETS + SERVER_TARGETS
ACTIONS = ("kill", "pause", "term")

SERVICE_HOLD_S = (0.5, 8.0)
SERVER_HOLD_S = (2.0, 15.0)
RECOVERY_S = 6.0  # a restarted service's start-up and group join before it is a target again
QUIET_TAIL_S = 5.0  # no fault starts this close to the end of the load


@dataclass(frozen=True)
class Fault:
    at_s: float  # seconds after the load starts
    target: str
    action: str
    hold_s: float  # down time before the restart, or how long the pause lasts

    @property
    def kind(self) -> str:
        """The target's kind (replicas of a service count together)."""
        return self.target.split("-")[0]

    def describe(self) -> str:
        verb = {"kill": "SIGKILL", "pause": "SIGSTOP", "term": "SIGTERM"}[self.action]
        after = "SIGCONT" if self.action == "pause" else "restart"
        return f"t+{self.at_s:6.1f}s  {verb:<7} {self.target:<10} {after} after {self.hold_s:4.1f}s"


def draw(seed: int, duration_s: float, mean_gap_s: float) -> tuple[Fault, ...]:
    if duration_s <= 0 or mean_gap_s <= 0:
        raise ValueError("duration and mean gap must be positive")
    chance = random.Random(seed)
    busy_until = dict.fromkeys(TARGETS, 0.0)
    faults: list[Fault] = []
    at = chance.uniform(1.0, mean_gap_s)
    while at < duration_s - QUIET_TAIL_S:
        server_down = any(busy_until[s] > at for s in SERVER_TARGETS)
        free = [t for t in TARGETS if busy_until[t] <= at and not (server_down and t in SERVER_TARGETS)]
        if free:
            target = chance.choice(free)
            action = chance.choice(ACTIONS)
            low, high = SERVER_HOLD_S if target in SERVER_TARGETS else SERVICE_HOLD_S
            hold = round(chance.uniform(low, high), 1)
            faults.append(Fault(round(at, 1), target, action, hold))
            busy_until[target] = at + hold + RECOVERY_S
        at += max(0.5, chance.expovariate(1.0 / mean_gap_s))
    return tuple(faults)


def counts(faults: tuple[Fault, ...]) -> dict[str, int]:
    """Faults per kind of target and action, e.g. {'kafka kill': 2, 'verifier pause': 3}."""
    result: dict[str, int] = {}
    for fault in faults:
        key = f"{fault.kind} {fault.action}"
        result[key] = result.get(key, 0) + 1
    return dict(sorted(result.items()))
