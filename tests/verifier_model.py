"""The verifier's batch core over an in-memory store, for property tests.

It runs `services.verifier.batch.plan_batch` (the same pure core `process_batch` runs
inside one PostgreSQL transaction) and applies the plan to dictionaries exactly as
`services/verifier/store.py` applies it to tables: events appended by id, the clock
moved forward, due timers taken in slices, payments recorded, decisions upserted, the
evaluated subjects' budget claims replaced, timers set. A "crash" is a batch whose plan
is thrown away (the transaction never committed), then delivered again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.verifier.batch import plan_batch
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.payments import BudgetRequest
from shared.domain.events import PaymentInstruction, PaymentKind, Transition

CLOCK_START = dt.date(1900, 1, 1)


@dataclass
class InMemoryVerifier:
    book: ContractBook
    directory: dict[str, InstitutionInfo]
    sweep_subjects_max: int = 2000
    events: dict[str, Transition] = field(default_factory=dict)
    streams: dict[str, list[Transition]] = field(default_factory=lambda: defaultdict(list))
    today: dt.date = CLOCK_START
    timers: set[tuple[str, dt.date]] = field(default_factory=set)
    payments: dict[tuple[str, str], list[PaymentInstruction]] = field(default_factory=lambda: defaultdict(list))
    payment_ids: set[str] = field(default_factory=set)
    decisions: dict[str, tuple[str, str | None, int, int]] = field(default_factory=dict)
    claims: dict[str, BudgetRequest] = field(default_factory=dict)  # by budget|outcome key
    published: list[PaymentInstruction] = field(default_factory=list)

    def add_contract(self, contract: object) -> None:
        from shared.domain.contracts.model import Contract
        assert isinstance(contract, Contract)
        if self.book.add(contract):
            self.timers.update((subject, CLOCK_START) for subject in self.streams)

    def batch(self, transitions: Sequence[Transition], ticks: Sequence[dt.date] = (),
              crash: bool = False) -> int:
        """Process one batch; return how many timers are still due. With `crash`, the
        transaction is rolled back (nothing of it is kept)."""
        fresh = {t.event_id: t for t in transitions if t.event_id not in self.events}
        changed = {t.subject for t in fresh.values()}
        seen = max([t.occurred_on for t in transitions] + list(ticks), default=None)
        today = max(self.today, seen) if seen else self.today
        due_all = sorted(((d, s) for s, d in self.timers if d <= today))
        taken = due_all[:self.sweep_subjects_max]
        subjects = sorted(changed | {s for _, s in taken})
        streams = {s: self.streams[s] + [t for t in fresh.values() if t.subject == s] for s in subjects}
        in_force = self.book.in_force()
        issued = {k: v for k, v in self.payments.items() if k[0] in subjects}
        stored = {k: v for k, v in self.decisions.items() if k.split("|")[2] in subjects}
        plan = plan_batch(in_force, subjects, streams, today, self.directory, issued, stored,
                          list(self.claims.values()))
        if crash:
            return len(due_all)
        for transition in fresh.values():
            self.events[transition.event_id] = transition
            self.streams[transition.subject].append(transition)
        self.today = today
        self.timers -= {(s, d) for d, s in taken}
        for instruction in plan.instructions:
            assert instruction.payment_id not in self.payment_ids, "a payment id issued twice"
            self.payment_ids.add(instruction.payment_id)
            self.payments[(instruction.subject, instruction.contract_id)].append(instruction)
            self.published.append(instruction)
        for key, _subject, _contract, status, reason, owed, record in plan.decision_rows:
            self.decisions[key] = (status, reason, owed, json.loads(record)["contract_version"])
        for key in [k for k, c in self.claims.items() if c.subject in subjects]:
            del self.claims[key]
        for request in plan.requests:
            self.claims[f"{request.budget}|{request.outcome_key}"] = request
        self.timers.update(plan.timers)
        return sum(1 for _, d in self.timers if d <= self.today)

    def drain(self, rounds_max: int = 1000) -> None:
        """What the handler and the ticker do: batches with no events until no timer is due."""
        for _ in range(rounds_max):
            if self.batch([]) == 0:
                return
        raise AssertionError("timers never drained")

    def net_by_payee(self) -> dict[tuple[str, str, str], int]:
        """Net money instructed per (contract, subject, payee): payments minus clawbacks."""
        net: dict[tuple[str, str, str], int] = defaultdict(int)
        for i in self.published:
            sign = 1 if i.kind == PaymentKind.PAYMENT else -1
            net[(i.contract_id, i.subject, i.payee)] += sign * i.amount_minor
        return {k: v for k, v in net.items() if v != 0}

    def statuses(self) -> dict[str, tuple[str, str | None, int]]:
        return {k: v[:3] for k, v in self.decisions.items()}
