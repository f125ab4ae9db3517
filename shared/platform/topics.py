"""Every Kafka topic the system uses, in one place.

Names carry a major version: a breaking change to a topic's records gets a new topic,
never a silent change of meaning. Partition counts are chosen, not defaulted, because
auto-creation is off on every broker we run: a typo in a topic name must fail loudly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.domain.tenancy import topic_segment

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


def all_topics(namespace: str = NAMESPACE, tenants: Iterable[str] = ()) -> tuple[TopicSpec, ...]:
    """Every topic of `namespace`; with `tenants`, each tenant's own topics too."""
    shared = tuple(in_namespace(spec, namespace) for spec in ALL_TOPICS)
    own = tuple(tenant_topic(in_namespace(spec, namespace), tenant) for tenant in tenants for spec in PER_TENANT)
    return shared + own


# ---- topics per tenant (docs/tenancy.md, "Topics per tenant") -------------------------
#
# With TENANTS_FILE, each tenant writes its contract versions and its finance office's
# settlements onto topics of its own, `<namespace>.contracts.<segment>.v1` and
# `<namespace>.settlements.<segment>.v1` (segment: `topic_segment` of the tenant id), which
# only its own Kafka logins may write (a PREFIXED ACL on `<namespace>.contracts.<segment>.`,
# shared/platform/kafka_access.py). The verifier and the ledger read the shared topic and
# every tenant's. The contracts topic is compacted per topic: another tenant's login can no
# longer write a record that displaces a tenant's contract version.
PER_TENANT: tuple[TopicSpec, ...] = (CONTRACTS, SETTLEMENTS)
_SEGMENT = r"[A-Za-z0-9_-]{1,128}"


def tenant_topic(spec: TopicSpec, tenant: str) -> TopicSpec:
    """`spec`'s topic of one tenant (`spec` in any namespace): `ns.contracts.v1` ->
    `ns.contracts.<segment>.v1`."""
    base, _, version = spec.name.rpartition(".")
    return TopicSpec(f"{base}.{topic_segment(tenant)}.{version}", spec.partitions, spec.compacted,
                     f"{spec.purpose}; of tenant {tenant}", spec.keep_forever)


def topic_names(spec: TopicSpec, tenants: Iterable[str] = ()) -> tuple[str, ...]:
    """The shared topic of `spec` and each tenant's, in that order: what a reader of all reads."""
    return (spec.name, *(tenant_topic(spec, tenant).name for tenant in tenants))


def segment_of(topic: str, spec: TopicSpec) -> str | None:
    """The tenant segment of `topic` when it is a tenant's topic of `spec`'s kind, in
    `spec`'s namespace (`ns.settlements.<segment>.v1`); None for any other topic."""
    base, _, version = spec.name.rpartition(".")
    found = re.fullmatch(rf"{re.escape(base)}\.({_SEGMENT})\.{re.escape(version)}", topic)
    return found.group(1) if found else None


def segment_in(topic: str, spec: TopicSpec) -> str | None:
    """As `segment_of`, in whatever namespace `topic` is (`stafet audit --contracts-topic`,
    a test's namespace): the segment of `<any>.contracts.<segment>.v1`, else None."""
    kind, _, version = spec.name.removeprefix(f"{NAMESPACE}.").rpartition(".")
    found = re.fullmatch(rf".+\.{re.escape(kind)}\.({_SEGMENT})\.{re.escape(version)}", topic)
    return found.group(1) if found else None


def is_of_kind(topic: str, spec: TopicSpec) -> bool:
    """`topic` is `spec`'s shared topic or one of its tenants' (same namespace)."""
    return topic == spec.name or segment_of(topic, spec) is not None
