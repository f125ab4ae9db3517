"""Aimed crash points, for tests only: die at a named point of a service's progress.

A test sets `STAFET_FAULT_POINT=name` (or `name:count`, to die on the count-th time the
point is reached) in a service's environment; when that point is reached the process
kills itself with SIGKILL: no shutdown hooks, no final offset commit, no flush, exactly
like a crashed pod. Unset (always, outside tests), `reached` is one dictionary lookup.

The points are the windows where exactly-once is at stake:
- `ingest.after_publish`: transitions acknowledged by the broker, ids not yet remembered;
- `ingest.after_commit`: ids remembered (database committed), offsets not yet committed;
- `verifier.before_relay`: a batch's decisions and outbox committed, nothing published;
- `verifier.after_commit`: a batch committed and published, offsets not yet committed;
- `verifier.relay.after_publish`: outbox records acknowledged by the broker, not yet deleted;
- `ledger.after_commit`: a batch's entries committed, offsets not yet committed.
"""

from __future__ import annotations

import os
import signal
import sys

ENVIRONMENT_VARIABLE = "STAFET_FAULT_POINT"
POINTS = frozenset({
    "ingest.after_publish", "ingest.after_commit", "verifier.before_relay", "verifier.after_commit",
    "verifier.relay.after_publish", "ledger.after_commit",
})
# The process exits with this marker line on stderr, so a test can tell an aimed crash
# from an accidental one.
MARKER = "stafet-fault-point-reached"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}: unknown fault point {name!r}; one of {sorted(POINTS)}")
    times = int(count) if count else 1
    if times < 1:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}: the count must be at least 1, not {times}")
    return name, times


_armed = _parse(os.environ.get(ENVIRONMENT_VARIABLE))
_reached: dict[str, int] = {}


def reached(point: str) -> None:
    """Mark that `point` was reached; die there if a test aimed a crash at it."""
    assert point in POINTS, point
    if _armed is None or _armed[0] != point:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] >= _armed[1]:
        sys.stderr.write(f"{MARKER} {point} {_reached[point]}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
