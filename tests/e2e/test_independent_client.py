"""An institution's system that is not written in Python publishes through librdkafka (the
C client under most non-Java Kafka clients), logging in with SCRAM-SHA-512 as its own
Kafka principal, as docs/operations.md ("Clients") tells operators to. Debian's kcat is
built on librdkafka 2.0.2, whose SCRAM login Kafka 4.1 refuses; a current confluent-kafka
wheel bundles a librdkafka of 2.6.1 or later, which logs in.

The record is what any institution system sends: the event with its CPR number sealed to
ingest's public key, keyed by the sealed subject, signed with the institution's key in
the headers. Python's own code makes those bytes here (the format is the contract, not
the language); only the transport is librdkafka. Ingest admits it."""

from __future__ import annotations

import json
from pathlib import Path

import confluent_kafka
import pytest

from shared.domain.sealing import Sealer
from shared.domain.signing import RecordSigner
from shared.platform.processes import ServiceProcess
from shared.platform.sealing_key import publisher_public_key
from shared.platform.settings import Settings
from shared.platform.topics import INSTITUTION_EVENTS, TRANSITIONS, in_namespace
from tests.e2e.test_frontdoor import wait_for_records
from tests.servers import Servers

pytestmark = pytest.mark.e2e


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("-")[0].split(".")[:3])


async def test_an_institution_system_on_librdkafka_logs_in_with_scram_and_its_event_is_admitted(
        servers: Servers, namespace: str, service_env: dict[str, str], tmp_path: Path) -> None:
    librdkafka = confluent_kafka.libversion()[0]
    assert version_tuple(librdkafka) >= (2, 6, 1), f"librdkafka {librdkafka} cannot log in with SCRAM to Kafka 4"
    topic = in_namespace(INSTITUTION_EVENTS, namespace).name
    event = {"event_id": "librdkafka-1", "occurred_on": "2010-08-01", "reported_by": "alsskolen",
             "subject": {"cpr": "150904-4321"},
             "body": {"type": "enrolled", "institution": "alsskolen", "stage": "primary"}}
    key, value, reported_by = Sealer(publisher_public_key(Settings())).sealed(json.dumps(event).encode())
    (headers,) = RecordSigner.development(f"institution:{reported_by}").batch_headers([(topic, key, value)])
    password = (servers.credentials_dir / "kafka" / "institution").read_text().strip()
    producer = confluent_kafka.Producer({
        "bootstrap.servers": servers.bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "institution", "sasl.password": password,
        "enable.idempotence": True, "acks": "all"})
    delivered: list[object] = []
    producer.produce(topic, value=value, key=key, headers=headers,
                     on_delivery=lambda error, message: delivered.append(error or message))
    assert producer.flush(60) == 0, "not delivered within 60 s"
    assert len(delivered) == 1
    assert not isinstance(delivered[0], confluent_kafka.KafkaError), delivered[0]

    ingest = ServiceProcess("ingest", service_env, tmp_path / "ingest.log")
    ingest.start()
    try:
        (record,) = await wait_for_records(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name, 1)
        assert json.loads(record[1])["event_id"] == "librdkafka-1"
        assert b"150904" not in record[1]
    finally:
        ingest.stop()
