"""The pure engine replayed in one go: what the services must reach for a set of input
events however they were batched, duplicated or redelivered.

This is NOT an independent oracle (tests/oracle.py is): it runs the same pure functions
the services use (admission, fold, evaluation, caps, payments) over all events at once,
with no Kafka, no database and no batching, so it shows that transport, batching and
crashes change nothing; a bug in the domain core passes it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from shared.domain.admission import SubjectResolver, admit, as_reported
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.model import Contract
from shared.domain.decisions import decide_all
from shared.domain.events import PaymentKind, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.ledger.postings import budget_account, pending_account
from shared.domain.pseudonym import DEVELOPMENT_KEY
from shared.domain.sealing import Sealer, development_private_key
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
DIRECTORY = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in REGISTRY.all()}


def read_lines(path: Path) -> list[bytes]:
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


SEALING = development_private_key()
RESOLVER = SubjectResolver(DEVELOPMENT_KEY, "k1", SEALING)


def sealed(raw_events: Iterable[bytes]) -> list[bytes]:
    """Institution records as `stafet publish` sends them: CPR numbers sealed."""
    sealer = Sealer(SEALING.public_key())
    return [sealer.line(raw) for raw in raw_events]


def admitted(raw_events: Iterable[bytes], registry: InstitutionRegistry = REGISTRY) -> list[Transition]:
    """What ingest forwards for these records (given in clear, as in an institution's file)."""
    return [t for raw in sealed(raw_events)
            if isinstance(t := admit(raw, registry, RESOLVER, as_reported(raw)), Transition)]


def directory_of(registry: InstitutionRegistry) -> dict[str, InstitutionInfo]:
    return {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in registry.all()}


# The first watermark the end-to-end tests publish (tests/kafka_helpers.py: WATERMARK_FIRST).
WATERMARK_FIRST = dt.date(2100, 1, 1)


def expected_balances(contracts: Sequence[Contract], transitions: Sequence[Transition],
                      today: dt.date | None = None,
                      directory: dict[str, InstitutionInfo] = DIRECTORY) -> dict[str, int]:
    """Net balance (credits minus debits) per ledger account, decided as of `today`: by
    default the watermark the end-to-end tests publish once every fact is in
    (tests/kafka_helpers.py), past every fact and its review window."""
    today = today or WATERMARK_FIRST
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    balances: dict[str, int] = defaultdict(int)
    for effects in decide_all(ContractBook.of(contracts).in_force(), streams, today, directory).values():
        for instruction in effects.instructions:
            assert instruction.kind == PaymentKind.PAYMENT  # nothing issued, nothing to claw back
            balances[budget_account(instruction.payer, instruction.contract_id)] -= instruction.amount_minor
            balances[pending_account(instruction.payee, instruction.payee_role)] += instruction.amount_minor
    return {k: v for k, v in balances.items() if v != 0}


def event_line(event_id: str, occurred_on: str, reported_by: str, cpr: str,
               body: dict[str, object]) -> bytes:
    return json.dumps({"event_id": event_id, "occurred_on": occurred_on,
                       "reported_by": reported_by, "subject": {"cpr": cpr},
                       "body": body}).encode()
