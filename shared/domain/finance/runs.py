"""A payout run's life (pure): which state may follow which, and why not.

    created -> written -> sent -> acknowledged          (the bank's pain.002 accepted it)
                  |         |  -> rejected              (the bank's pain.002 refused it whole)
                  +---------+--> voided                 (finance withdrew it: its payments are free)

A run is recorded `created` and `written` in the one transaction that commits only once
its file is durably on disk, so no committed run lacks its file. `voided` and `rejected`
free the run's payments for the next run; a run the bank acknowledged can no longer be
voided (its money is on its way: a return brings a payment back instead).
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    CREATED = "created"
    WRITTEN = "written"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    VOIDED = "voided"


# The states whose payments are out (not free for another run).
LIVE = frozenset({RunState.CREATED, RunState.WRITTEN, RunState.SENT, RunState.ACKNOWLEDGED})

_FROM: dict[RunState, frozenset[RunState]] = {
    RunState.WRITTEN: frozenset({RunState.CREATED}),
    RunState.SENT: frozenset({RunState.WRITTEN}),
    RunState.ACKNOWLEDGED: frozenset({RunState.WRITTEN, RunState.SENT}),
    RunState.REJECTED: frozenset({RunState.WRITTEN, RunState.SENT}),
    RunState.VOIDED: frozenset({RunState.CREATED, RunState.WRITTEN, RunState.SENT}),
}


class RunRefusal(StrEnum):
    NO_SUCH_RUN = "no_such_run"
    RUN_ACKNOWLEDGED = "run_acknowledged"  # the bank took it: no void, no second answer
    RUN_VOIDED = "run_voided"              # withdrawn already
    RUN_REJECTED = "run_rejected"          # refused by the bank already: its payments are free
    RUN_NOT_WRITTEN = "run_not_written"
    PAYMENTS_SETTLED = "payments_settled"  # the bank booked some of its payments: no void
    WRONG_STATE = "wrong_state"            # e.g. marking a run sent twice


_BECAUSE = {RunState.ACKNOWLEDGED: RunRefusal.RUN_ACKNOWLEDGED, RunState.VOIDED: RunRefusal.RUN_VOIDED,
            RunState.REJECTED: RunRefusal.RUN_REJECTED, RunState.CREATED: RunRefusal.RUN_NOT_WRITTEN}


def refusal(current: RunState, wanted: RunState) -> RunRefusal | None:
    """None if a run in `current` may move to `wanted`; otherwise why not."""
    if current in _FROM.get(wanted, frozenset()):
        return None
    return _BECAUSE.get(current, RunRefusal.WRONG_STATE)
