"""Who may do what on the broker: principals, SCRAM users and ACLs, set up by the admin.

The broker runs the KRaft StandardAuthorizer with `allow.everyone.if.no.acl.found=false`:
a principal can do exactly what an ACL below allows, nothing else. ACLs are written per
topic namespace (one installation, or one test) with PREFIXED resource patterns
(`<namespace>.payments.` covers `payments.v1` and a later `payments.v2`), so a second
namespace on the same broker gets its own grants and nobody else's. The two kinds of topic
that also exist per tenant (contracts, settlements) are written through LITERAL grants on
the shared topic and PREFIXED grants on one tenant's (`<namespace>.contracts.<segment>.`),
and read through the PREFIXED `<namespace>.contracts.`, which covers them all.

aiokafka's admin client has no call for SCRAM users or a batch of ACLs, so the two
requests are built here from its protocol types (Kafka's AlterUserScramCredentials v0
and CreateAcls v1); both go to the broker as the super user, which is used for this
setup and for creating topics, never by a service.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from shared.domain.tenancy import topic_segment
from shared.platform.credentials import kafka_options
from shared.platform.settings import Settings
from shared.platform.topics import CONTRACTS, SETTLEMENTS, TopicSpec, in_namespace, tenant_topic

ADMIN_PRINCIPAL = "admin"
ADMIN_TIMEOUT_MS = 10_000
# Kafka's minimum for SCRAM-SHA-512 is 4096; the broker stores only the salted hash.
SCRAM_ITERATIONS = 8192
SCRAM_SHA_512 = 2  # the mechanism's id in AlterUserScramCredentials


class Kind(Enum):
    """What a principal is; its ACLs follow from this alone."""

    INGEST = "ingest"
    VERIFIER = "verifier"
    LEDGER = "ledger"
    FRONTDOOR = "frontdoor"      # the HTTP front door: institutions' events, authenticated by token
    INSTITUTION = "institution"  # an institution's (or a municipal gateway's) system
    FINANCE = "finance"          # a finance system that settles payment instructions
    INVESTOR = "investor"        # an investor's or a fund's system: commitments and disbursements
    OPERATOR = "operator"        # people running Stafet: contracts, the clock, monitoring
    AUDITOR = "auditor"          # `stafet audit`: reads the signed facts and the journal, writes nothing


# The local stack's principals: one per service, one institution system, one finance
# system and the operators. A deployment adds more with `stafet credentials add`.
LOCAL_PRINCIPALS: Mapping[str, Kind] = {kind.value: kind for kind in Kind}


class Resource(IntEnum):  # Kafka's ResourceType ids
    TOPIC = 2
    GROUP = 3


class Operation(IntEnum):  # Kafka's AclOperation ids
    READ = 3
    WRITE = 4
    DESCRIBE = 8


ANY = 1       # the wildcard of every filter enum
LITERAL = 3   # PatternType: exactly this name
PREFIXED = 4  # PatternType: every name that starts with it
ALLOW = 3     # AclPermissionType

# Kinds a tenant has Kafka logins of its own for (docs/tenancy.md, "Topics per tenant").
TENANT_KINDS: tuple[Kind, ...] = (Kind.OPERATOR, Kind.FINANCE)


@dataclass(frozen=True)
class Grant:
    resource: Resource
    prefix: str  # the resource name (the whole name when the pattern is LITERAL)
    operation: Operation
    pattern: int = PREFIXED


def _topic(namespace: str, name: str) -> str:
    return f"{namespace}.{name}."


def _shared_topic(namespace: str, spec: TopicSpec) -> str:
    """The shared topic of a kind that also has topics per tenant: a LITERAL grant, since a
    prefix `<ns>.contracts.` would cover every tenant's `<ns>.contracts.<segment>.v1` too."""
    return in_namespace(spec, namespace).name


def tenant_principal(kind: Kind, tenant: str) -> str:
    """The Kafka login (SCRAM user) of a tenant's operators or finance office:
    `tenant-<segment>-operator`, `tenant-<segment>-finance`."""
    return f"tenant-{topic_segment(tenant)}-{kind.value}"


def tenant_grants(kind: Kind, namespace: str, tenant: str) -> tuple[Grant, ...]:
    """Exactly what a tenant's own login of `kind` needs: WRITE on its own topics only
    (a PREFIXED pattern ending in the segment and a dot, so no other tenant's topic
    matches), and for finance the shared investments topic, whose receivers check the
    payer (docs/tenancy.md). Nothing read: no other tenant's record reaches it."""
    write = Operation.WRITE

    def own(spec: TopicSpec) -> Grant:
        base = tenant_topic(in_namespace(spec, namespace), tenant).name.rpartition(".")[0]
        return Grant(Resource.TOPIC, f"{base}.", write)

    match kind:
        case Kind.OPERATOR:
            return (own(CONTRACTS),)
        case Kind.FINANCE:
            return (own(SETTLEMENTS), Grant(Resource.TOPIC, _topic(namespace, "investments"), write))
        case _:
            raise ValueError(f"a tenant has no Kafka login of kind {kind.value}")


def grants_for(kind: Kind, namespace: str) -> tuple[Grant, ...]:
    """Exactly what a principal of `kind` needs in `namespace` (docs/security.md)."""
    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE

    def topic(name: str, operation: Operation) -> Grant:
        return Grant(Resource.TOPIC, _topic(namespace, name), operation)

    def group(service: str) -> Grant:
        # Consumer groups are `<namespace>-<service>` (shared/platform/topics.py): the ledger's
        # `-ledger` prefix covers its `-ledger-settlements` group too.
        return Grant(Resource.GROUP, f"{namespace}-{service}", read)

    match kind:
        case Kind.INGEST:
            return (topic("institution-events", read), topic("transitions", write), topic("dead-letters", write),
                    group("ingest"))
        case Kind.VERIFIER:
            # Contracts are read without a group (assigned partitions, from the start);
            # its own outputs are read back by `stafet verifier rebuild --check`.
            # Dead letters: transitions and contract versions no trusted key signed.
            return (topic("transitions", read), topic("contracts", read), topic("outcomes", write),
                    topic("outcomes", read), topic("payments", write), topic("payments", read),
                    topic("dead-letters", write), group("verifier"))
        case Kind.LEDGER:
            # The ledger forwards settlements onto the journal so they take their place in
            # the chain's order: it writes the payments topic as well as reading it.
            # It signs checkpoints of its chain onto a topic of their own, and reads the
            # last one back at start to know where to go on from.
            # Investment records are forwarded onto the journal like settlements.
            # Disputes are kept, to hold a disputed outcome's payments out of payout runs.
            return (topic("payments", read), topic("payments", write), topic("settlements", read),
                    topic("investments", read), topic("dead-letters", write), topic("ledger-checkpoints", write),
                    topic("ledger-checkpoints", read), topic("disputes", read), group("ledger"))
        case Kind.FRONTDOOR:
            # Institutions' events; and the portal's disputes and operators' decisions on them.
            return (topic("institution-events", write), topic("disputes", write))
        case Kind.INSTITUTION:
            return (topic("institution-events", write),)
        case Kind.FINANCE:
            # Investments: a fund's budget, savings paid into a fund, an investment's close.
            # The shared settlements topic only (a tenant's finance office writes its own).
            return (topic("payments", read), Grant(Resource.TOPIC, _shared_topic(namespace, SETTLEMENTS), write,
                                                   LITERAL), topic("investments", write), group("finance"))
        case Kind.INVESTOR:
            return (topic("investments", write),)
        case Kind.AUDITOR:
            # Recomputes every instruction from the signed facts (cli/audit.py), apart from
            # the live services: read only, assigned partitions, no consumer group.
            return (topic("transitions", read), topic("contracts", read), topic("payments", read),
                    topic("ledger-checkpoints", read))
        case Kind.OPERATOR:
            # Contracts; clock ticks go onto transitions (`stafet clock`); reading what
            # was rejected or decided; describing every topic and group, for lag.
            # The shared contracts topic only: each tenant's operators write their own.
            return (Grant(Resource.TOPIC, _shared_topic(namespace, CONTRACTS), write, LITERAL),
                    topic("transitions", write), topic("dead-letters", read),
                    topic("outcomes", read), topic("ledger-checkpoints", read), Grant(Resource.TOPIC, f"{namespace}.", describe),
                    Grant(Resource.GROUP, f"{namespace}-", describe))


def namespace_acls(namespace: str, principals: Mapping[str, Kind] = LOCAL_PRINCIPALS,
                   tenants: Iterable[str] = ()) -> list[tuple[str, Grant]]:
    """The ACLs of `principals` in `namespace`, and of each tenant's own logins."""
    return [(name, grant) for name, kind in principals.items() for grant in grants_for(kind, namespace)] + [
        (tenant_principal(kind, tenant), grant) for tenant in tenants for kind in TENANT_KINDS
        for grant in tenant_grants(kind, namespace, tenant)]


def tenant_principals(tenants: Iterable[str]) -> tuple[str, ...]:
    return tuple(tenant_principal(kind, tenant) for tenant in tenants for kind in TENANT_KINDS)


# ---- the two admin requests aiokafka does not offer ---------------------------------

class _AlterScramResponse(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user_name", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _AlterScramStruct(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8),
                                   ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8),
                                    ("iterations", Int32), ("salt", CompactBytes),
                                    ("salted_password", CompactBytes), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class _AlterScram(Request[_AlterScramStruct]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, upsertions: list[tuple[Any, ...]]) -> None:
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_AlterScramStruct]) -> _AlterScramStruct:
        return request_struct_class([], self._upsertions, {})


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """aiokafka's CreateAclsRequest carries one ACL; this carries a whole plan at once."""

    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class AccessError(RuntimeError):
    """The broker refused to create a user or an ACL; the message is the broker's."""


def _salted(password: str, salt: bytes) -> bytes:
    # SCRAM's Hi() is PBKDF2 with the mechanism's hash (RFC 5802 section 2.2).
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)


class KafkaAccess:
    """An admin connection (as the super user) that creates SCRAM users and ACLs."""

    def __init__(self, bootstrap: str, settings: Settings | None = None) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=ADMIN_TIMEOUT_MS,
                                          **kafka_options(ADMIN_PRINCIPAL, settings))

    async def __aenter__(self) -> KafkaAccess:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def _send(self, request: Request[Any]) -> Any:
        return await self._admin._send_to_controller(request)  # no public call exists

    async def upsert_users(self, passwords: Mapping[str, str]) -> None:
        """Create (or change the password of) SCRAM-SHA-512 users."""
        if not passwords:
            return
        upsertions: list[tuple[Any, ...]] = []
        for name, password in passwords.items():
            salt = os.urandom(32)
            upsertions.append((name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, _salted(password, salt), {}))
        response = await self._send(_AlterScram(upsertions))
        failed = [f"{user}: {message or code}" for user, code, message, _ in response.results if code]
        if failed:
            raise AccessError("SCRAM users refused: " + "; ".join(failed))

    async def grant(self, acls: Iterable[tuple[str, Grant]]) -> int:
        """Create the ACLs (creating one that exists already is a no-op); their count."""
        creations = [(int(g.resource), g.prefix, g.pattern, f"User:{name}", "*", int(g.operation), ALLOW)
                     for name, g in acls]
        if not creations:
            return 0
        response = await self._send(_CreateAcls(creations))
        failed = [f"{message or code}" for code, message in response.creation_responses if code]
        if failed:
            raise AccessError("ACLs refused: " + "; ".join(failed))
        await self._until_enforced({(c[0], c[1], c[2], c[3], c[5]) for c in creations})
        return len(creations)

    async def _until_enforced(self, wanted: set[tuple[int, str, int, str, int]]) -> None:
        """Wait until the broker's authorizer holds every ACL just created: the controller
        answers before the broker has applied the change, and a client that connects in
        between is refused (seen as ClusterAuthorizationFailed on a producer's start)."""
        deadline = asyncio.get_running_loop().time() + ADMIN_TIMEOUT_MS / 1000
        while True:
            response = await self._admin._send_request(  # no public call exists
                DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY))
            held = {(resource_type, name, pattern, principal, operation)
                    for resource_type, name, pattern, acls in response.resources
                    for principal, _, operation, _ in acls}
            if wanted <= held:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AccessError(f"{len(wanted - held)} ACL(s) not enforced by the broker in "
                                  f"{ADMIN_TIMEOUT_MS} ms")
            await asyncio.sleep(0.05)


async def grant_namespace(bootstrap: str, namespace: str,
                          principals: Mapping[str, Kind] = LOCAL_PRINCIPALS,
                          settings: Settings | None = None, tenants: Iterable[str] = (),
                          tenant_passwords: Mapping[str, str] | None = None) -> int:
    """Give every principal what its kind needs in `namespace`, and each tenant's own logins
    what they need (creating them with `tenant_passwords`, by login name, when given);
    the number of ACLs."""
    async with KafkaAccess(bootstrap, settings) as access:
        if tenant_passwords:
            await access.upsert_users(tenant_passwords)
        return await access.grant(namespace_acls(namespace, principals, tenants))
