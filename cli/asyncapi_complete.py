"""What FastStream does not write into the AsyncAPI documents, added after generation.

FastStream documents channels, operations and payload schemas from the code. A consumer
in another team also needs: where to connect in each environment and how to
authenticate; what each record's Kafka key is (that decides ordering and compaction);
which headers travel with it; and an example record. They are declared here, next to
the generator, and checked: every example validates against the model the payload
schema comes from (tests/unit/test_asyncapi.py).

Batch subscribers make FastStream document a payload as an array of records; on the
wire every Kafka record is one object, so the array is replaced by its item schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

from shared.domain.dead_letters import DeadLetterRecord, DeadLetterSource
from shared.domain.events import (
    ClockTick,
    Enrolled,
    InstitutionEvent,
    OutcomeRecorded,
    OutcomeStatus,
    PaymentInstruction,
    PaymentKind,
    Settlement,
    SettlementStatus,
    SubjectReference,
    Transition,
)

PSEUDONYM = "k1:" + "3f" * 32
PAYMENT_ID = "9c1f4e0b2a7d4c6e8f0a1b2c3d4e5f60"

SERVERS: dict[str, Any] = {
    "development": {
        "host": "127.0.0.1:9092", "protocol": "kafka",
        "description": "The local stack (`make up`, `stafet dev up`): one broker on this machine; tests and "
                       "the benchmark start their own on free ports.",
    },
    "production": {
        "host": "{bootstrap}", "protocol": "kafka-secure",
        "description": "The production cluster: TLS (SASL_SSL) with SASL/SCRAM-SHA-512, one principal per "
                       "service, operator and finance system, and topic ACLs that let each write only what it "
                       "produces.",
        "variables": {"bootstrap": {"description": "KAFKA_BOOTSTRAP_SERVERS of the installation",
                                    "default": "kafka-bootstrap.stafet.svc:9093"}},
        "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
    },
}

SECURITY_SCHEMES: dict[str, Any] = {
    "scramSha512": {"type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512: the principal's user name and password "
                                   "(KAFKA_USERNAME / KAFKA_PASSWORD)."},
}

# Topic (without namespace) -> what its records are keyed by, and the key's schema.
KEYS: dict[str, tuple[str, dict[str, Any]]] = {
    "institution-events.v1": ("The subject's sealed CPR token (or pseudonym), else the event id: one subject's "
                              "events share a partition and keep their order.",
                              {"type": "string", "maxLength": 512}),
    "transitions.v1": ("The subject's pseudonym (facts), or `clock` (clock ticks).",
                       {"type": "string", "pattern": "^([a-z0-9]{1,8}:[0-9a-f]{64}|clock)$"}),
    "dead-letters.v1": ("The rejected record's id (event id or settlement id) when it could be read, else none.",
                        {"type": ["string", "null"], "maxLength": 128}),
    "contracts.v1": ("`payer/contract_id@version/signer` (shared/domain/contracts/model.py `contract_record_key`): "
                     "compaction keeps the latest record per version and signer, so another tenant's record never "
                     "displaces a genuine version. Records published before keep `contract_id@version`.",
                     {"type": "string", "pattern": "^([A-Za-z0-9][A-Za-z0-9._:-]{0,127}/)?[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
                                                   "@[0-9]+(/[a-z]+:[A-Za-z0-9][A-Za-z0-9._-]{0,63})?$"}),
    "outcomes.v1": ("The subject's pseudonym.", {"type": "string", "pattern": "^[a-z0-9]{1,8}:[0-9a-f]{64}$"}),
    "payments.v1": ("The payee's id (instructions and clawbacks), the payment id (forwarded settlements) or the "
                    "investor or fund (forwarded investment records); one partition, so the order is the ledger's.",
                    {"type": "string", "maxLength": 128}),
    "settlements.v1": ("The payment id: one payment's answers keep their order.",
                       {"type": "string", "pattern": "^[0-9a-f]{32}$"}),
    "ledger-checkpoints.v1": ("`ledger`: one partition, in chain order.", {"type": "string", "const": "ledger"}),
    "investments.v1": ("The investor or fund: one investor's records keep their order (docs/investment.md).",
                       {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"}),
    "disputes.v1": ("The dispute's id: a dispute and the decisions on it keep their order (one partition).",
                    {"type": "string", "pattern": "^[0-9a-f]{32}$"}),
}

# Topics whose records are signed (shared/domain/signing.py, docs/security.md): the receiver
# believes a record only from the principal that may write that topic.
SIGNED_TOPICS = frozenset({"institution-events.v1", "transitions.v1", "contracts.v1", "outcomes.v1", "payments.v1",
                           "settlements.v1", "ledger-checkpoints.v1", "investments.v1", "disputes.v1"})
SIGNATURE_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["stafet-key-id", "stafet-signature"],
    "description": "A record is signed alone (no stafet-batch-proof) or as one of a batch signed once "
                   "(shared/domain/signing.py): either way it verifies on its own.",
    "properties": {
        "stafet-key-id": {"type": "string", "pattern": "^ed25519:[0-9a-f]{16}$",
                          "description": "Which Ed25519 key signed: the first 16 hex digits of SHA-256 of the raw "
                                         "public key, looked up in the registry the receiver trusts."},
        "stafet-signature": {"type": "string", "contentEncoding": "base64",
                             "description": "Without stafet-batch-proof: Ed25519 over "
                                            "M = frame('stafet-signed-record-v1') || frame(topic) || frame(key) || "
                                            "frame(value), frame = 4-byte big-endian length + bytes (no key: "
                                            "ffffffff). With it: Ed25519 over frame('stafet-signed-batch-v1') || "
                                            "frame(root) || size (4 bytes, big-endian), root of the Merkle tree over "
                                            "the batch's records, leaf = SHA-256(0x00 || M), node = "
                                            "SHA-256(0x01 || left || right), an odd last node carried up unchanged, "
                                            "at most 256 leaves."},
        "stafet-batch-proof": {"type": "string", "contentEncoding": "base64",
                               "description": "Only on a record signed as one of a batch: index (4 bytes, "
                                              "big-endian) || size (4 bytes) || the sibling hashes from the leaf "
                                              "up (32 bytes each, none where the node is carried up). A wrong or "
                                              "malformed proof is a bad signature."},
    },
}

_ENROLLED = Enrolled(institution="alsskolen", stage="primary")


DISPUTED_OUTCOME = "mobility-bonus|school_ready|k1:" + "3f" * 32 + "|ev-17"


def _examples() -> dict[str, BaseModel]:
    """One example record per payload schema, built from the models (so they validate)."""
    from services.ledger.checkpoints import Checkpoint
    from shared.domain.contracts.loader import load_contract
    from shared.domain.disputes import (
        DisputeOpened,
        DisputeReason,
        DisputeResolved,
        Resolution,
        dispute_id,
        resolution_id,
    )
    from shared.domain.investment.records import InvestmentCommitted
    from shared.platform.settings import REPO_ROOT

    return {
        "Checkpoint": Checkpoint(first_sequence=1201, entry_hashes=("5e" * 32, "a1" * 32)),
        "Contract": load_contract(REPO_ROOT / "examples" / "contracts" / "employment-pbr.yaml"),
        "InstitutionEvent": InstitutionEvent(
            event_id="alsskolen-2024-0001", occurred_on=dt.date(2024, 8, 12), reported_by="alsskolen",
            subject=SubjectReference(cpr_sealed="v2." + "SEALED-CPR-TOKEN_" * 4),  # sealed by stafet publish
            body=_ENROLLED),
        "Transition": Transition(
            event_id="alsskolen-2024-0001", occurred_on=dt.date(2024, 8, 12), reported_by="alsskolen",
            reporter_kind="primary_school", subject=PSEUDONYM, birth_date=dt.date(2018, 3, 1), body=_ENROLLED),
        "ClockTick": ClockTick(today=dt.date(2024, 9, 1)),
        "OutcomeRecorded": OutcomeRecorded(
            type="OutcomeVerified", outcome_key="mobility-bonus:1:school_ready:" + PSEUDONYM + ":ev-17",
            contract_id="mobility-bonus", contract_version=1, outcome_id="school_ready", subject=PSEUDONYM,
            trigger_event_id="ev-17", status=OutcomeStatus.VERIFIED, reason=None,
            occurred_on=dt.date(2024, 8, 12), owed_minor=4_000_000, currency="DKK",
            payees=(("bornehuset-solsikken", 1_000_000), ("alsskolen", 3_000_000))),
        "PaymentInstruction": PaymentInstruction(
            payment_id=PAYMENT_ID, kind=PaymentKind.PAYMENT, contract_id="mobility-bonus", contract_version=1,
            outcome_id="school_ready", subject=PSEUDONYM, payer="sonderborg-kommune", payee="alsskolen",
            amount_minor=3_000_000, currency="DKK", occurred_on=dt.date(2024, 8, 12), trigger_event_id="ev-17"),
        "Settlement": Settlement(
            settlement_id="bank-" + PAYMENT_ID, payment_id=PAYMENT_ID, status=SettlementStatus.PAID,
            settled_on=dt.date(2024, 9, 2), bank_reference="BANKREF-000001"),
        "InvestmentCommitted": InvestmentCommitted(
            commitment_id="nii-sib", investor="nordic-impact-investor", provider="jobvejen",
            contract_id="sib-youth-education", amount_minor=200_000_000, currency="DKK",
            committed_on=dt.date(2021, 1, 1)),
        "DisputeOpened": DisputeOpened(
            dispute_id=dispute_id(DISPUTED_OUTCOME, "alsskolen"), outcome_key=DISPUTED_OUTCOME,
            contract_id="mobility-bonus", outcome_id="school_ready", institution="alsskolen",
            reason=DisputeReason.WRONG_DATES, note="The child left us on 31 July 2024, not 30 June.",
            opened_by="alsskolen-admin", opened_on=dt.date(2024, 8, 20), window_closes_on=dt.date(2024, 8, 27)),
        "DisputeResolved": DisputeResolved(
            resolution_id=resolution_id(dispute_id(DISPUTED_OUTCOME, "alsskolen"), Resolution.REJECTED,
                                        "The school reported the leaving on 30 June itself.", None),
            dispute_id=dispute_id(DISPUTED_OUTCOME, "alsskolen"), resolution=Resolution.REJECTED,
            note="The school reported the leaving on 30 June itself.", resolved_by="operator",
            resolved_on=dt.date(2024, 8, 22)),
        "DeadLetterRecord": DeadLetterRecord(
            reason="untrusted_source", field="reported_by", message="a primary_school may not report exam_result",
            record_id="alsskolen-2024-0002", original='{"event_id": "alsskolen-2024-0002", ...}', service="ingest",
            source=DeadLetterSource(topic="stafet.institution-events.v1", partition=3, offset=1207)),
    }


EXAMPLES = _examples()


def _schema_names(payload: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """The component schema names a payload refers to (one, or the members of a union)."""
    if "$ref" in payload:
        name = payload["$ref"].rsplit("/", 1)[1]
        target = schemas.get(name, {})
        if name in EXAMPLES or not target:
            return [name]
        return _schema_names(target, schemas)
    for union in ("anyOf", "oneOf"):
        if union in payload:
            return [n for member in payload[union] for n in _schema_names(member, schemas)]
    return []


def _unbatch(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for message in document.get("components", {}).get("messages", {}).values():
        payload = message.get("payload", {})
        ref = payload.get("$ref", "")
        name = ref.rsplit("/", 1)[1].replace("%20", " ").replace("%28", "(").replace("%29", ")") if ref else ""
        target = schemas.get(name)
        if target is not None and target.get("type") == "array":
            message["payload"] = target["items"]
            del schemas[name]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """The document with servers, security, keys, headers and examples (in place)."""
    _unbatch(document)
    document["servers"] = SERVERS
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    schemas = components.get("schemas", {})
    by_channel_message: dict[str, str] = {}
    for channel in document.get("channels", {}).values():
        channel["servers"] = [{"$ref": f"#/servers/{name}"} for name in SERVERS]
        for message in channel.get("messages", {}).values():
            by_channel_message[message["$ref"].rsplit("/", 1)[1]] = channel["address"]
    for message_name, message in components.get("messages", {}).items():
        address = by_channel_message.get(message_name.replace(" ", "%20").replace("(", "%28").replace(")", "%29"), "")
        topic = address.split(".", 1)[1] if "." in address else address
        if topic in KEYS:
            description, key_schema = KEYS[topic]
            message["bindings"] = {"kafka": {"bindingVersion": "0.4.0",
                                             "key": {**key_schema, "description": description}}}
        if topic in SIGNED_TOPICS:
            message["headers"] = SIGNATURE_HEADERS
        names = _schema_names(message.get("payload", {}), schemas)
        examples = [{"name": name, "payload": EXAMPLES[name].model_dump(mode="json")}
                    for name in names if name in EXAMPLES]
        if examples:
            message["examples"] = examples
    return document
