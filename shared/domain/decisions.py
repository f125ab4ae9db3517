"""What one subject's (re-)evaluation changes: new instructions, changed decisions, timers.

Pure. Two steps, so that contract-wide budgets do not depend on processing order:
`evaluate` decides a subject's outcomes under every contract (all versions, per-subject
caps applied) on the facts that are in (docs/contracts.md, "Finality") and yields the
claims its verified outcomes make on contract budgets; `settle` applies what the budgets
granted (`grant_budget`, over every subject's claims), keeps every outcome provisional
(expected money, no instruction) until its decision date (the day it counts plus the
contract's `review_days`) is final, and reconciles the money with what was already
issued by the difference, naming the correcting event of every change after finality.
The batch handler does the I/O around them; `decide_all` runs
both over a whole population at once (simulate, the tests' oracle).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from shared.domain.contracts.evaluation import (
    InstitutionInfo,
    OutcomeDecision,
    OutcomeStatus,
    RejectionReason,
    evaluate_versions,
    residences,
)
from shared.domain.contracts.model import Contract
from shared.domain.contracts.payments import (
    FINAL,
    RECHECK,
    BudgetRequest,
    Cause,
    apply_grants,
    budget_requests,
    desired_instructions,
    grant_budget,
    instruction_outcome_key,
    outcome_key,
    place_requests,
    reconcile,
)
from shared.domain.contracts.target_group import eligible_referrals
from shared.domain.contracts.timeline import SubjectTimeline, fold
from shared.domain.events import OutcomeRecorded, PaymentInstruction, Transition

EVENT_NAMES = {
    OutcomeStatus.VERIFIED: "OutcomeVerified",
    OutcomeStatus.REJECTED: "OutcomeRejected",
    OutcomeStatus.CAPPED: "OutcomeCapped",
    OutcomeStatus.PENDING_SUSTAINMENT: "OutcomePending",
    OutcomeStatus.PENDING_REVIEW: "OutcomePending",
}

InForce = tuple[Contract, tuple[dt.date, dt.date]]
# outcome key -> (status, reason, owed_minor, contract_version) as last recorded
Stored = Mapping[str, tuple[str, str | None, int, int]]


# The facts that are in, in stream order, each with the watermark of its partition when
# it arrived (`known_after`): a fact known on or after an outcome's decision date is a
# correction to it.
Known = Sequence[tuple[str, dt.date]]
ONE_DAY = dt.timedelta(days=1)


@dataclass
class SubjectEffects:
    instructions: list[PaymentInstruction] = field(default_factory=list)
    changed: list[OutcomeDecision] = field(default_factory=list)
    timers: list[dt.date] = field(default_factory=list)
    decisions: tuple[OutcomeDecision, ...] = ()
    # Per payment id: why it was issued (reason, correcting event).
    causes: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def versions_by_contract(in_force: Sequence[InForce]) -> dict[str, list[InForce]]:
    grouped: dict[str, list[InForce]] = {}
    for contract, window in in_force:
        grouped.setdefault(contract.contract_id, []).append((contract, window))
    return grouped


@dataclass(frozen=True)
class ContractIndex:
    """The book in force as each subject's decision reads it, built once per book (not per
    subject): a subject then costs the same however many tenants' contracts the book holds
    (docs/performance.md, "A nation through the whole stack")."""

    versions: dict[str, list[InForce]]  # by contract id, in the book's order
    order: dict[str, int]  # contract id -> its place in that order
    anyone: frozenset[str]  # the contracts that may concern any subject
    by_municipality: dict[str, frozenset[str]]  # the others, by the municipalities they name
    by_key: dict[tuple[str, int], Contract]  # (contract id, version) -> the version

    @classmethod
    def of(cls, in_force: Sequence[InForce]) -> ContractIndex:
        versions = versions_by_contract(in_force)
        anyone: set[str] = set()
        named: dict[str, set[str]] = {}
        for contract_id, its in versions.items():
            only = only_municipalities(its)
            if only is None:
                anyone.add(contract_id)
            for municipality in only or ():
                named.setdefault(municipality, set()).add(contract_id)
        return cls(versions, {c: n for n, c in enumerate(versions)}, frozenset(anyone),
                   {m: frozenset(ids) for m, ids in named.items()},
                   {(c.contract_id, c.version): c for c, _ in in_force})

    def concerning(self, municipalities: set[str]) -> list[str]:
        """The contracts that may concern a subject registered or resident, ever, in
        `municipalities` (`may_concern`), in the book's order."""
        found = set(self.anyone)
        for municipality in municipalities:
            found |= self.by_municipality.get(municipality, frozenset())
        return sorted(found, key=self.order.__getitem__)


_indexed: list[tuple[tuple[InForce, ...], ContractIndex]] = []


def contract_index(in_force: Sequence[InForce]) -> ContractIndex:
    """The index of a book in force; the last one is kept while the same (immutable) book
    is decided, subject after subject."""
    if not isinstance(in_force, tuple):
        return ContractIndex.of(in_force)
    if _indexed and _indexed[0][0] is in_force:
        return _indexed[0][1]
    index = ContractIndex.of(in_force)
    _indexed[:] = [(in_force, index)]
    return index


class _Authorities(Mapping[str, str]):
    """Institution id -> the institution that may correct its events, read from the
    directory when asked (a subject's corrections name few institutions; copying the whole
    directory per subject cost as much as the national directory is large)."""

    def __init__(self, directory: Mapping[str, InstitutionInfo]) -> None:
        self._directory = directory

    def __getitem__(self, institution: str) -> str:
        info = self._directory[institution]
        if info.authority is None:
            raise KeyError(institution)
        return info.authority

    def __iter__(self) -> Iterator[str]:
        return (i for i, info in self._directory.items() if info.authority is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:  # without counting the directory (`authorities or {}`)
        return True


def evaluate(in_force: Sequence[InForce], subject: str, stream: Sequence[Transition],
             today: dt.date, directory: Mapping[str, InstitutionInfo],
             known: Mapping[str, dt.date] | None = None,
             ) -> tuple[tuple[OutcomeDecision, ...], list[BudgetRequest]]:
    """The subject's decisions under every contract (before contract-wide caps) and
    the claims they make on contract budgets. `known`: per event id, the watermark of its
    partition when it arrived; a claim whose trigger became known on or after its
    decision date (a late claim) ranks on the day after that watermark, behind every
    claim granted before it was known, so that it never displaces a final grant."""
    if not stream:
        return (), []
    timeline = fold(subject, stream[0].birth_date, stream, _Authorities(directory))
    decisions: list[OutcomeDecision] = []
    requests: list[BudgetRequest] = []
    touched = {info.municipality for r in timeline.registrations if (info := directory.get(r.institution))}
    touched |= residences(timeline)
    index = contract_index(in_force)
    for contract_id in index.concerning(touched):
        versions = index.versions[contract_id]
        decided = evaluate_versions(versions, timeline, today, directory)
        decisions.extend(decided)
        for contract, _ in versions:
            mine = [d for d in decided if d.contract_version == contract.version]
            requests.extend(_late_ranked(contract, mine, budget_requests(contract, mine), known or {}))
        # Places are the agreement's, not a version's: the latest version's count.
        latest = max((c for c, _ in versions), key=lambda c: c.version)
        requests.extend(_late_place(latest, timeline, place_requests(latest, timeline), known or {}))
    return tuple(decisions), requests


def may_concern(versions: Sequence[tuple[Contract, tuple[dt.date, dt.date]]], municipalities: set[str]) -> bool:
    """Whether a contract can concern a subject registered or resident, ever, in
    `municipalities`: not when every version admits only the children of one municipality
    on a day (`eligibility.enrolled_on.municipality` or `eligibility.resident_on`, a
    tenant's contract: docs/tenancy.md) and the subject was never registered nor resident
    there. Such a subject gets no decision under it at all (not a `not_eligible` one per
    trigger): one municipality's contract records nothing about another's children, and a
    subject costs the same however many tenants there are."""
    only = only_municipalities(versions)
    return only is None or not only.isdisjoint(municipalities)


def only_municipalities(versions: Sequence[tuple[Contract, tuple[dt.date, dt.date]]]) -> frozenset[str] | None:
    """The municipalities a contract's versions admit children of, when every version
    admits only one municipality's on a day; None when some version admits any child."""
    found: set[str] = set()
    for contract, _ in versions:
        rules = contract.eligibility
        named = [m for m in (rules.enrolled_on.municipality if rules.enrolled_on else None,
                             rules.resident_on.municipality if rules.resident_on else None) if m is not None]
        if not named:
            return None
        found.update(named)
    return frozenset(found)


def _late_place(contract: Contract, timeline: SubjectTimeline, requests: list[BudgetRequest],
                known: Mapping[str, dt.date]) -> list[BudgetRequest]:
    """A place claim whose referral became known after the watermark passed the referral
    day plus the review window ranks behind every place granted before it was known."""
    rule = contract.eligibility.referral
    if not requests or rule is None:
        return requests
    first = next(iter(eligible_referrals(rule, timeline)))
    arrived = known.get(first.event_id)
    if arrived is None or arrived < first.occurred_on + dt.timedelta(days=contract.caps.review_days):
        return requests
    return [replace(r, occurred_on=max(r.occurred_on, arrived + ONE_DAY)) for r in requests]


def _late_ranked(contract: Contract, decisions: Sequence[OutcomeDecision], requests: Sequence[BudgetRequest],
                 known: Mapping[str, dt.date]) -> list[BudgetRequest]:
    by_key = {outcome_key(d): d for d in decisions}
    ranked = []
    for request in requests:
        decision = by_key[request.outcome_key]
        arrived = known.get(decision.trigger_event_id)
        if arrived is not None and arrived >= review_due(contract, decision):
            request = replace(request, occurred_on=max(request.occurred_on, arrived + ONE_DAY))
        ranked.append(request)
    return ranked


def review_due(contract: Contract, decision: OutcomeDecision) -> dt.date:
    try:
        return decision.occurred_on + dt.timedelta(days=contract.caps.review_days)
    except OverflowError:
        return dt.date.max


def decision_date(contract: Contract, decision: OutcomeDecision) -> dt.date:
    """The day the outcome is final: the day it counts (its trigger, or the end of its
    sustainment) plus the contract's review window."""
    return review_due(contract, decision)


def correction_cause(due: dt.date, known: Known, since: dt.date | None = None) -> Cause:
    """Why an outcome final since `due` changes now: the latest fact (in stream order)
    that became known on or after `due` (and, with `since`, came in at this frontier
    step: known on or after `since`), or none (`final`: decided as it stands)."""
    late = [event_id for event_id, arrived in known if arrived >= due and (since is None or arrived >= since)]
    return Cause("correction", late[-1]) if late else FINAL


def settle(in_force: Sequence[InForce], subject: str, decisions: Sequence[OutcomeDecision],
           grants: Mapping[str, int], today: dt.date,
           issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]],
           stored: Stored, known: Known = (), since: dt.date | None = None) -> SubjectEffects:
    """`today`: the finality frontier (outcomes whose decision date is on or before it
    are final); `known`: the facts that are in (see `Known`); `since`: the frontier
    before this step (the facts known on or after it came in now: they name a change)."""
    index = contract_index(in_force)
    versions = index.by_key
    effects = SubjectEffects()
    final: list[OutcomeDecision] = []
    causes: dict[str, Cause] = {}
    arrivals = dict(known)
    for decision in apply_grants(decisions, grants):
        contract = versions[(decision.contract_id, decision.contract_version)]
        due = decision_date(contract, decision)
        if decision.status in (OutcomeStatus.VERIFIED, OutcomeStatus.PENDING_SUSTAINMENT) and today < due:
            # Provisional: stored and shown with its expected money, instructs nothing; a
            # fact that arrives before the watermark passes `due` changes it for free.
            effects.timers.append(due)
            if decision.status == OutcomeStatus.VERIFIED:
                decision = replace(decision, status=OutcomeStatus.PENDING_REVIEW,
                                   detail=f"provisional until {due}")
        elif decision.status == OutcomeStatus.CAPPED and arrivals.get(decision.trigger_event_id, dt.date.min) >= due:
            # Its trigger became known after the watermark passed its decision date: the
            # budget had been granted to final claims already, and nothing was left.
            decision = replace(decision, reason=RejectionReason.LATE_CLAIM)
        causes[outcome_key(decision)] = correction_cause(due, known, since)
        final.append(decision)
    # One reconciliation per contract over all its versions: a version never sees
    # another version's payments as something to claw back.
    # Only the contracts with a decision or an instruction for this subject: another has
    # nothing to pay or take back (and a tenant's contract that cannot concern the subject
    # made no decision: `may_concern`).
    involved = {d.contract_id for d in final} | {cid for (who, cid) in issued if who == subject}
    for contract_id in sorted(c for c in involved if c in index.versions):
        wanted: list[PaymentInstruction] = []
        for version in sorted({c.version for c, _ in index.versions[contract_id]}):
            wanted.extend(desired_instructions(
                versions[(contract_id, version)],
                (d for d in final if d.contract_id == contract_id and d.contract_version == version)))
        already = issued.get((subject, contract_id), ())
        for instruction in already:  # outcomes no longer there (retracted): their own cause
            key = instruction_outcome_key(instruction)
            if key not in causes:
                deciding = versions.get((contract_id, instruction.contract_version))
                due = instruction.occurred_on + dt.timedelta(days=deciding.caps.review_days if deciding else 0)
                causes[key] = correction_cause(due, known, since)
        made = reconcile(wanted, already, causes)
        effects.instructions.extend(made)
        for instruction in made:
            cause = causes.get(instruction_outcome_key(instruction), FINAL)
            if cause.reason == "final" and instruction.payment_id != _first_id(instruction, wanted):
                cause = RECHECK
            effects.causes[instruction.payment_id] = (cause.reason, cause.event_id)
    seen: set[str] = set()
    for decision in final:
        key = outcome_key(decision)
        seen.add(key)
        current = (decision.status.value, decision.reason.value if decision.reason else None,
                   decision.owed_minor)
        if stored.get(key, (None,))[:3] != current:
            effects.changed.append(decision)
    effects.changed.extend(_withdrawn(stored, seen, subject, today))
    effects.decisions = tuple(final)
    return effects


def _first_id(instruction: PaymentInstruction, wanted: Sequence[PaymentInstruction]) -> str | None:
    """The line's first payment id, if `instruction` is that line's wanted payment."""
    for candidate in wanted:
        if (candidate.payee, candidate.payee_role) == (instruction.payee, instruction.payee_role) \
                and instruction_outcome_key(candidate) == instruction_outcome_key(instruction):
            return candidate.payment_id
    return None


def decide_subject(in_force: Sequence[InForce], subject: str, stream: Sequence[Transition],
                   today: dt.date, directory: Mapping[str, InstitutionInfo],
                   issued: Mapping[tuple[str, str], Sequence[PaymentInstruction]],
                   stored: Stored, grants: Mapping[str, int]) -> SubjectEffects:
    """`evaluate` then `settle` for one subject, with the budgets' grants given."""
    decisions, _ = evaluate(in_force, subject, stream, today, directory)
    return settle(in_force, subject, decisions, grants, today, issued, stored)


def decide_all(in_force: Sequence[InForce], streams: Mapping[str, Sequence[Transition]],
               today: dt.date, directory: Mapping[str, InstitutionInfo]
               ) -> dict[str, SubjectEffects]:
    """Every subject at once, nothing issued or recorded before: what the verifier's
    store holds once it has processed these streams, however they were batched."""
    evaluated = {subject: evaluate(in_force, subject, streams[subject], today, directory)
                 for subject in sorted(streams)}
    grants = grant_budget(r for _, requests in evaluated.values() for r in requests)
    return {subject: settle(in_force, subject, decisions, grants, today, {}, {})
            for subject, (decisions, _) in evaluated.items()}


def _withdrawn(stored: Stored, seen: set[str], subject: str, today: dt.date) -> list[OutcomeDecision]:
    """Decisions recorded earlier whose trigger no longer exists (retracted, amended)."""
    gone = RejectionReason.EVIDENCE_WITHDRAWN
    withdrawn = []
    for key, (status, reason, _, version) in sorted(stored.items()):
        if key in seen or (status == OutcomeStatus.REJECTED.value and reason == gone.value):
            continue
        contract_id, outcome_id, key_subject, trigger = key.split("|")
        if key_subject != subject:
            continue
        withdrawn.append(OutcomeDecision(contract_id, version, outcome_id, subject, trigger, "",
                                         OutcomeStatus.REJECTED, gone, today))
    return withdrawn


def outcome_record(decision: OutcomeDecision, currency: str) -> OutcomeRecorded:
    return OutcomeRecorded(
        type=EVENT_NAMES[decision.status],  # type: ignore[arg-type]
        outcome_key=outcome_key(decision), contract_id=decision.contract_id,
        contract_version=decision.contract_version, outcome_id=decision.outcome_id,
        subject=decision.subject, trigger_event_id=decision.trigger_event_id,
        status=decision.status,
        reason=decision.reason.value if decision.reason else None,
        occurred_on=decision.occurred_on, owed_minor=decision.owed_minor, currency=currency,
        payees=tuple((p.payee, p.amount_minor) for p in decision.payees),
    )
