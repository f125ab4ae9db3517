"""Every Kafka topic the system uses, in one place.

Names carry a major version: a breaking change to a topic's records gets a new topic,
never a silent change of meaning. Partition counts are chosen, not defaulted, because
auto-creation is off on every broker we run: a typo in a topic name must fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # Why each topic exists, for `stafet dev status` and the docs.
    purpose: str = ""


INSTITUTION_EVENTS = TopicSpec(
    "stafet.institution-events.v1", 6,
    purpose="raw events from institution systems (may carry CPR numbers; ingest only)",
)
TRANSITIONS = TopicSpec(
    "stafet.transitions.v1", 6,
    purpose="validated, pseudonymised, trusted events keyed by subject pseudonym",
)
DEAD_LETTERS = TopicSpec(
    "stafet.dead-letters.v1", 1,
    purpose="rejected input with a reason code (CPR numbers removed)",
)
CONTRACTS = TopicSpec(
    "stafet.contracts.v1", 1, compacted=True,
    purpose="contract versions published by operators, keyed by contract id and version",
)
OUTCOMES = TopicSpec(
    "stafet.outcomes.v1", 6,
    purpose="verified, rejected and capped outcomes keyed by subject pseudonym",
)
PAYMENTS = TopicSpec(
    "stafet.payments.v1", 6,
    purpose="payment instructions and clawbacks keyed by payee",
)
SETTLEMENTS = TopicSpec(
    "stafet.settlements.v1", 3,
    purpose="paid/failed answers from finance systems keyed by payment id",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    INSTITUTION_EVENTS, TRANSITIONS, DEAD_LETTERS, CONTRACTS, OUTCOMES, PAYMENTS, SETTLEMENTS,
)
