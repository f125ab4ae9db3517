"""The verifier's batch core over an in-memory store, for property tests.

It runs `services.verifier.batch.plan_batch` (the same pure core `process_batch` runs
inside one PostgreSQL transaction) and applies the plan to dictionaries exactly as
`services/verifier/store.py` applies it to tables: events appended by id with their
partition's watermark on arrival, the watermarks moved, the finality frontier moved
(`frontier_step`), due timers taken, payments recorded, decisions upserted, the
evaluated subjects' budget claims replaced, timers set. A "crash" is a batch whose plan
is thrown away (the transaction never committed), then delivered again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.verifier.batch import Arrival, arrivals_of, frontier_step, plan_batch, watermarks_on_arrival
from services.verifier.store import UNPARTITIONED, global_watermark
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
    partition_ids: tuple[int, ...] = (UNPARTITIONED,)
    events: dict[str, Transition] = field(default_factory=dict)
    # (reporter, event id) -> its partition's watermark when it arrived
    arrived: dict[tuple[str, str], dt.date] = field(default_factory=dict)
    streams: dict[str, list[Transition]] = field(default_factory=lambda: defaultdict(list))
    marks: dict[int, dt.date] = field(default_factory=dict)  # partition -> watermark
    today: dt.date = CLOCK_START  # the finality frontier
    timers: set[tuple[str, dt.date]] = field(default_factory=set)
    payments: dict[tuple[str, str], list[PaymentInstruction]] = field(default_factory=lambda: defaultdict(list))
    payment_ids: set[str] = field(default_factory=set)
    causes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    decisions: dict[str, tuple[str, str | None, int, int]] = field(default_factory=dict)
    claims: dict[str, BudgetRequest] = field(default_factory=dict)  # by budget|outcome key
    published: list[PaymentInstruction] = field(default_factory=list)

    def add_contract(self, contract: object) -> None:
        from shared.domain.contracts.model import Contract
        assert isinstance(contract, Contract)
        if self.book.add(contract):
            self.timers.update((subject, CLOCK_START) for subject in self.streams)

    @property
    def watermark(self) -> dt.date:
        return global_watermark(self.marks, self.partition_ids)

    def batch(self, transitions: Sequence[Transition], ticks: Sequence[dt.date] = (),
              crash: bool = False, arrivals: Sequence[Arrival] | None = None) -> int:
        """Process one batch (`transitions` then the watermarks `ticks` on no partition, or
        `arrivals` per partition); return how much is still due. With `crash`, the
        transaction is rolled back (nothing of it is kept)."""
        arrivals = arrivals_of(transitions, ticks) if arrivals is None else arrivals
        on_arrival, moved = watermarks_on_arrival(arrivals, self.marks)
        fresh: dict[str, Transition] = {}
        for _, arrival in arrivals:
            if isinstance(arrival, Transition) and arrival.event_id not in self.events:
                fresh.setdefault(arrival.event_id, arrival)
        arrived = {**self.arrived, **{(t.reported_by, k): on_arrival[(t.reported_by, k)] for k, t in fresh.items()}}
        watermark = global_watermark({**self.marks, **moved}, self.partition_ids)
        today = self.today
        if watermark > today and not any(d <= today for _, d in self.timers):
            next_known = min((k for k in arrived.values() if k > today), default=None)
            target = watermark if next_known is None else min(watermark, next_known)
            counts: dict[dt.date, int] = defaultdict(int)
            for _, due_on in self.timers:
                if due_on <= target:
                    counts[due_on] += 1
            today = frontier_step(self.today, target, sorted(counts.items()), self.sweep_subjects_max)
        due_all = sorted((d, s) for s, d in self.timers if d <= today)
        taken = due_all if today > self.today else due_all[:self.sweep_subjects_max]
        changed = {t.subject for t in fresh.values()}
        subjects = sorted(changed | {s for _, s in taken})
        streams = {s: self.streams[s] + [t for t in fresh.values() if t.subject == s] for s in subjects}
        in_force = self.book.in_force()
        issued = {k: v for k, v in self.payments.items() if k[0] in subjects}
        stored = {k: v for k, v in self.decisions.items() if k.split("|")[2] in subjects}
        plan = plan_batch(in_force, subjects, streams, today, self.directory, issued, stored,
                          list(self.claims.values()), arrived, since=self.today)
        if crash:
            return len(due_all) + 1
        for transition in fresh.values():
            self.events[transition.event_id] = transition
            self.streams[transition.subject].append(transition)
        self.arrived = arrived
        self.marks.update(moved)
        self.today = today
        self.timers -= {(s, d) for d, s in taken}
        for instruction in plan.instructions:
            assert instruction.payment_id not in self.payment_ids, "a payment id issued twice"
            self.payment_ids.add(instruction.payment_id)
            self.payments[(instruction.subject, instruction.contract_id)].append(instruction)
            self.published.append(instruction)
        self.causes.update(plan.causes)
        for key, _subject, _contract, status, reason, owed, record in plan.decision_rows:
            self.decisions[key] = (status, reason, owed, json.loads(record)["contract_version"])
        for key in [k for k, c in self.claims.items() if c.subject in subjects]:
            del self.claims[key]
        for request in plan.requests:
            self.claims[f"{request.budget}|{request.outcome_key}"] = request
        self.timers.update(plan.timers)
        return sum(1 for _, d in self.timers if d <= self.watermark) + int(self.today < self.watermark)

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
