"""Every Kafka topic the system uses, in one place.

Names carry a major version: a breaking change to a topic's records gets a new topic,
never a silent change of meaning. Partition counts are chosen, not defaulted, because
auto-creation is off on every broker we run: a typo in a topic name must fail loudly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# One broker can host several independent Stafet installations (or test runs): every
# topic name and consumer group starts with this namespace.
NAMESPACE = os.environ.get("STAFET_TOPIC_NAMESPACE", "stafet")


def group_id(service: str) -> str:
    return f"{NAMESPACE}-{service}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # Why each topic exists, for `stafet dev status` and the docs.
    purpose: str = ""
    # A source of truth: kept forever (retention.ms=-1), since rebuilds replay it from 0.
    keep_forever: bool = False


INSTITUTION_EVENTS = TopicSpec(
    f"{NAMESPACE}.institution-events.v1", 6, keep_forever=True,
    purpose="raw events from institution systems (may carry CPR numbers; ingest only)",
)
TRANSITIONS = TopicSpec(
    f"{NAMESPACE}.transitions.v1", 6, keep_forever=True,
    purpose="validated, pseudonymised, trusted events keyed by subject pseudonym",
)
DEAD_LETTERS = TopicSpec(
    f"{NAMESPACE}.dead-letters.v1", 1,
    purpose="rejected input with a reason code (CPR numbers removed)",
)
CONTRACTS = TopicSpec(
    f"{NAMESPACE}.contracts.v1", 1, compacted=True, keep_forever=True,
    purpose="contract versions published by operators, keyed by payer, contract id, version and signer",
)
OUTCOMES = TopicSpec(
    f"{NAMESPACE}.outcomes.v1", 6,
    purpose="verified, rejected and capped outcomes keyed by subject pseudonym",
)
# One partition on purpose: this topic is the ledger's journal. Its order is the order
# of the hash chain, so replaying it rebuilds an identical chain (docs/ledger.md).
PAYMENTS = TopicSpec(
    f"{NAMESPACE}.payments.v1", 1, keep_forever=True,
    purpose="the ledger journal: payment instructions, clawbacks and forwarded settlements",
)
SETTLEMENTS = TopicSpec(
    f"{NAMESPACE}.settlements.v1", 3,
    purpose="paid/failed answers from finance systems keyed by payment id",
)
# Investors', funds' and finance offices' investment records (docs/investment.md), keyed
# by investor or fund; the ledger checks each signature and forwards it onto the journal.
INVESTMENTS = TopicSpec(
    f"{NAMESPACE}.investments.v1", 3,
    purpose="commitments, disbursements, funds, savings and closes, keyed by investor or fund",
)

# One partition: the ledger's signed checkpoints, in chain order (services/ledger/checkpoints.py).
LEDGER_CHECKPOINTS = TopicSpec(
    f"{NAMESPACE}.ledger-checkpoints.v1", 1, keep_forever=True,
    purpose="signed entry hashes: the ledger's chain anchored outside its database",
)

# Institutions' disputes of outcomes in their review window and operators' decisions on
# them (shared/domain/disputes.py), signed by the front door; the ledger keeps them and
# holds a disputed outcome's payments out of payout runs until the dispute is resolved.
# One partition: few records, and a dispute's decisions follow it in order.
DISPUTES = TopicSpec(
    f"{NAMESPACE}.disputes.v1", 1, keep_forever=True,
    purpose="institutions' disputes in the review window and operators' decisions on them",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    INSTITUTION_EVENTS, TRANSITIONS, DEAD_LETTERS, CONTRACTS, OUTCOMES, PAYMENTS, SETTLEMENTS,
    LEDGER_CHECKPOINTS, INVESTMENTS, DISPUTES,
)


SOURCE_OF_TRUTH: tuple[TopicSpec, ...] = tuple(t for t in ALL_TOPICS if t.keep_forever)


def in_namespace(spec: TopicSpec, namespace: str) -> TopicSpec:
    """The same topic in another namespace (tests and side-by-side installations)."""
    suffix = spec.name.removeprefix(f"{NAMESPACE}.")
    return TopicSpec(f"{namespace}.{suffix}", spec.partitions, spec.compacted, spec.purpose, spec.keep_forever)


def all_topics(namespace: str = NAMESPACE) -> tuple[TopicSpec, ...]:
    return tuple(in_namespace(spec, namespace) for spec in ALL_TOPICS)
