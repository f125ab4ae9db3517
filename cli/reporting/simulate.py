"""What-if: replay institution events through the pure engine under a contract variant.

No Kafka, no database, no money moves. The same admission (validation, trust,
pseudonyms), fold, evaluation, caps and payments code as the services run, over all
events at once, evaluated as of `on` (default: the latest event date).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

from cli.reporting.data import Institution, MoneyRow, OutcomeRow, ReportData
from shared.domain.admission import SubjectResolver, admit, as_reported
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.model import Contract
from shared.domain.decisions import decide_all
from shared.domain.events import PaymentKind, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.pseudonym import DEVELOPMENT_KEY
from shared.domain.sealing import Sealer, development_private_key


def transitions_of(raw_events: Iterable[bytes], registry: InstitutionRegistry) -> tuple[list[Transition], int]:
    """Admitted transitions, and how many records ingest would have rejected."""
    opener = development_private_key()  # a throw-away seal: the records never leave memory
    sealer = Sealer(opener.public_key())
    resolver = SubjectResolver(DEVELOPMENT_KEY, "k1", opener)
    admitted, rejected = [], 0
    for raw in raw_events:
        result = admit(sealer.line(raw), registry, resolver, as_reported(raw))
        if isinstance(result, Transition):
            admitted.append(result)
        else:
            rejected += 1
    return admitted, rejected


def simulate(title: str, contracts: Sequence[Contract], transitions: Sequence[Transition],
             registry: InstitutionRegistry, on: dt.date | None = None) -> ReportData:
    today = on or max(t.occurred_on for t in transitions)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in registry.all()}
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    in_force = ContractBook.of(contracts).in_force()
    outcomes: list[OutcomeRow] = []
    money: list[MoneyRow] = []
    for effects in decide_all(in_force, streams, today, directory).values():
        outcomes.extend(OutcomeRow(d.contract_id, d.outcome_id, d.status.value,
                                   d.reason.value if d.reason else None, d.occurred_on, d.owed_minor, d.subject)
                        for d in effects.changed)
        money.extend(MoneyRow(i.contract_id, i.outcome_id, i.payee, i.kind.value, i.amount_minor, i.occurred_on,
                              i.subject)
                     for i in effects.instructions if i.kind == PaymentKind.PAYMENT)
    institutions = {i.id: Institution(i.id, i.name, i.kind) for i in registry.all()}
    return ReportData(title, tuple(contracts), tuple(outcomes), tuple(money), institutions,
                      source=f"simulation of {len(transitions):,} events as of {today.isoformat()}")
