"""Publishing signed records from the command line (operators, finance): one signer per
command, each record signed for the topic it is sent to (shared/domain/signing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from cli.errors import fail
from shared.domain.signing import RecordSigner
from shared.platform.settings import Settings
from shared.platform.topics import TopicSpec
from shared.platform.trust import (
    DEVELOPMENT_FINANCE,
    DEVELOPMENT_OPERATOR,
    ConfigurationError,
    record_signer,
    trusted_keys,
)

SEND_WINDOW = 1000  # records in flight before waiting for the broker's acks


def signers_tenant(settings: Settings, signer: RecordSigner) -> str | None:
    """With TENANTS_FILE: the tenant whose operator or finance principal `signer` is (whose
    key it is, as the receivers' trusted keys say); None without tenants or for a principal
    of no tenant (the clearing house's)."""
    from shared.domain.principals import Principal
    from shared.platform.tenants import TenantsConfigurationError, load_tenancy

    try:
        tenancy = load_tenancy(settings)
        if tenancy is None:
            return None
        principal = trusted_keys(settings).principals().get(signer.key_id)
    except (TenantsConfigurationError, ConfigurationError) as error:
        fail(str(error))
    return tenancy.tenant_of(principal or Principal.parse(signer.principal))


def route(spec: TopicSpec, login: str, tenant: str | None) -> tuple[str, str]:
    """The topic `spec`'s records go to and the Kafka login that may write it: a tenant's
    own topic and login (docs/tenancy.md, "Topics per tenant"), else the shared topic and
    `login` (`operator`, `finance`). In production KAFKA_USERNAME names the login."""
    from shared.platform.kafka_access import Kind, tenant_principal
    from shared.platform.topics import tenant_topic

    if tenant is None:
        return spec.name, login
    return tenant_topic(spec, tenant).name, tenant_principal(Kind(login), tenant)


def signer_or_fail(settings: Settings, role: str, key_file: Path | None) -> RecordSigner:
    """The operator's or finance system's signer; development falls back to the
    well-known `operator:dev` / `finance:dev` key, production refuses to."""
    principal = {"operator": DEVELOPMENT_OPERATOR, "finance": DEVELOPMENT_FINANCE}[role]
    try:
        return record_signer(settings, principal, key_file)
    except ConfigurationError as error:
        fail(str(error))


async def send_signed(bootstrap: str, client_id: str, topic: str,
                      records: Sequence[tuple[bytes | None, bytes]], signer: RecordSigner, *,
                      principal: str, every_partition: bool = False) -> int:
    """Send `records` signed by `signer`, connected to the broker as `principal` (the
    operator or a finance system: whoever the ACLs let write `topic`). With
    `every_partition`, each record goes to every partition of `topic` (a watermark: each
    partition reads it in order with its own facts). Returns how many were sent."""
    from shared.platform.kafka import make_producer

    producer = make_producer(bootstrap, client_id=client_id, principal=principal)
    sent = 0
    try:
        await producer.start()
        partitions: list[int | None] = [None]
        if every_partition:
            partitions = sorted(await producer.partitions_for(topic))
        for first in range(0, len(records), SEND_WINDOW):
            window = [(topic, key, value) for key, value in records[first:first + SEND_WINDOW]]
            # One signature per tree of records, each with its proof; a lone record (a
            # contract version, a watermark, one settlement) keeps a single signature.
            headers = signer.batch_headers(window)
            futures = [await producer.send(topic, value, key=key, headers=signed, partition=partition)
                       for (_, key, value), signed in zip(window, headers, strict=True) for partition in partitions]
            await asyncio.gather(*futures)
            sent += len(futures)
    finally:
        await producer.stop()
    return sent
