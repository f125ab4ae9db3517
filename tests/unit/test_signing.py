"""Signed records: what a signature proves, what it refuses, and which keys are trusted."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.main import app
from services.ledger.authenticity import admit_journal, admit_settlement
from services.verifier.authenticity import admit_contract, admit_transition
from shared.domain.admission import Reason, SubjectResolver, admit
from shared.domain.contracts.loader import load_contract
from shared.domain.dead_letters import DeadLetter
from shared.domain.events import ClockTick, Settlement, SettlementStatus, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.principals import Principal, Role, SignatureProblem, Unauthenticated
from shared.domain.signing import KEY_ID_HEADER, SIGNATURE_HEADER, RecordSigner, key_id_of, private_hex, public_bytes
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.trust import ConfigurationError, TrustedKeys, ledger_trust, record_signer, trusted_keys

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
TRUST = trusted_keys(Settings(stafet_env="development"), REGISTRY)
TOPIC = "ns.payments.v1"


def consumed(topic: str, key: bytes | None, value: bytes, signer: RecordSigner | None,
             *, signed_topic: str | None = None, signed_key: bytes | None = None) -> ConsumerRecord[Any, Any]:
    headers = tuple(signer.headers(signed_topic or topic, signed_key if signed_key is not None else key, value)
                    ) if signer else ()
    return ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=0, timestamp_type=0, key=key, value=value,
                          checksum=None, serialized_key_size=0, serialized_value_size=len(value), headers=headers)


def forwarded(journal: str, key: bytes, value: bytes, forwarder: RecordSigner | None,
              original: ConsumerRecord[Any, Any] | None) -> ConsumerRecord[Any, Any]:
    """A record the ledger's forwarder put on the journal, carrying `original` (the record
    as it arrived on its input topic) in its origin headers (services/ledger/origins.py)."""
    from services.ledger.origins import OriginRecord

    record = consumed(journal, key, value, forwarder)
    if original is None:
        return record
    origin = [(name, text.encode()) for name, text in OriginRecord.of(original).as_headers().items()]
    return dataclasses.replace(record, headers=(*record.headers, *origin))


def test_a_signature_proves_its_principal_for_that_topic_key_and_value_only() -> None:
    ledger = RecordSigner.development("service:ledger")
    value = b'{"x":1}'
    headers = ledger.headers(TOPIC, b"k", value)
    assert TRUST.authenticate(TOPIC, b"k", value, headers) == Principal(Role.SERVICE, "ledger")
    for topic, key, body in (("ns.settlements.v1", b"k", value), (TOPIC, b"other", value),
                             (TOPIC, None, value), (TOPIC, b"k", b'{"x":2}')):
        refused = TRUST.authenticate(topic, key, body, headers)
        assert isinstance(refused, Unauthenticated)
        assert refused.problem == SignatureProblem.BAD_SIGNATURE


def test_missing_unknown_and_garbled_signatures_are_named() -> None:
    stranger = RecordSigner("institution:alsskolen", Ed25519PrivateKey.generate())
    cases = {
        SignatureProblem.MISSING_SIGNATURE: [],
        SignatureProblem.UNKNOWN_SIGNER: stranger.headers(TOPIC, None, b"v"),
        SignatureProblem.BAD_SIGNATURE: [(KEY_ID_HEADER, RecordSigner.development("service:ledger").key_id.encode()),
                                         (SIGNATURE_HEADER, b"not base64!")],
    }
    for problem, headers in cases.items():
        found = TRUST.authenticate(TOPIC, None, b"v", headers)
        assert isinstance(found, Unauthenticated)
        assert found.problem == problem


def test_rotation_keeps_the_old_key_verifying_beside_the_new_one() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    operator = Principal(Role.OPERATOR, "alice")
    trust = TrustedKeys([(operator, old.public_key()), (operator, new.public_key())])
    for key in (old, new):
        signer = RecordSigner("operator:alice", key)
        assert trust.authenticate(TOPIC, None, b"v", signer.headers(TOPIC, None, b"v")) == operator
    assert key_id_of(old.public_key()) != key_id_of(new.public_key())


def _keyfile(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "signing.key"
    path.write_text(private_hex(key) + "\n")
    return path


def test_production_refuses_to_start_without_trusted_keys_or_a_signing_key(tmp_path: Path) -> None:
    production = Settings(stafet_env="production")
    with pytest.raises(ConfigurationError, match="TRUSTED_KEYS_FILE"):
        trusted_keys(production)
    with pytest.raises(ConfigurationError, match="SIGNING_KEY_FILE"):
        record_signer(production, "service:ledger")
    development_key = RecordSigner.development("service:ledger").key
    with pytest.raises(ConfigurationError, match="development key"):
        record_signer(Settings(stafet_env="production", signing_key_file=_keyfile(tmp_path, development_key)),
                      "service:ledger")


def test_production_trusts_only_listed_keys_and_refuses_development_ones(tmp_path: Path) -> None:
    real = Ed25519PrivateKey.generate()
    listed = tmp_path / "trusted.yaml"
    listed.write_text(f"finance:\n  kommune: [{public_bytes(real.public_key()).hex()}]\n")
    trust = trusted_keys(Settings(stafet_env="production", trusted_keys_file=listed))
    assert dict(trust.principals()) == {key_id_of(real.public_key()): Principal(Role.FINANCE, "kommune")}
    development = public_bytes(RecordSigner.development("finance:dev").key.public_key()).hex()
    listed.write_text(f"finance:\n  dev: [{development}]\n")
    with pytest.raises(ConfigurationError, match="development key"):
        trusted_keys(Settings(stafet_env="production", trusted_keys_file=listed))


def test_keys_new_makes_each_kind_of_signing_key_and_it_signs(tmp_path: Path) -> None:
    runner = CliRunner()
    for signer in ("institution:alsskolen", "operator:alice", "finance:kommune", "service:ledger"):
        result = runner.invoke(app, ["keys", "new", "--out", str(tmp_path), "--signer", signer])
        assert result.exit_code == 0, result.output
        stem = signer.replace(":", "-")
        assert (tmp_path / f"{stem}.key").stat().st_mode & 0o077 == 0
        key = record_signer(Settings(stafet_env="production"), signer, tmp_path / f"{stem}.key")
        assert key.key_id in result.output
    bad = runner.invoke(app, ["keys", "new", "--out", str(tmp_path), "--signer", "root:everything"])
    assert bad.exit_code == 2


# ---- ingest: the signature, not reported_by, says who speaks ---------------------------

def _event(reported_by: str, subject: dict[str, str]) -> bytes:
    return json.dumps({"event_id": "e-1", "occurred_on": "2010-08-01", "reported_by": reported_by,
                       "subject": subject, "body": {"type": "enrolled", "institution": "alsskolen"}}).encode()


def _admit(raw: bytes, signer: str | None) -> object:
    record = consumed("ns.institution-events.v1", None, raw, RecordSigner.development(signer) if signer else None)
    found = TRUST.authenticate(record.topic, record.key, raw, record.headers)
    return admit(raw, REGISTRY, SubjectResolver(b"k", "k1", None), found)  # type: ignore[arg-type]


PSEUDONYM = {"pseudonym": "k1:" + "ab" * 32, "birth_date": "2004-09-15"}


@pytest.mark.parametrize(("raw", "signer", "reason"), [
    (_event("alsskolen", PSEUDONYM), None, Reason.MISSING_SIGNATURE),
    (_event("exam-authority", PSEUDONYM), "institution:alsskolen", Reason.SIGNER_MISMATCH),
    (_event("alsskolen", PSEUDONYM), "service:ingest", Reason.SIGNER_MISMATCH),
    (_event("alsskolen", PSEUDONYM), "institution:alsskolen", Reason.PSEUDONYM_NOT_ALLOWED),
])
def test_ingest_refuses_what_the_signature_does_not_prove(raw: bytes, signer: str | None, reason: Reason) -> None:
    result = _admit(raw, signer)
    assert isinstance(result, DeadLetter)
    assert result.reason == reason


def test_a_register_may_name_a_subject_by_pseudonym() -> None:
    raw = json.dumps({"event_id": "e-2", "occurred_on": "2024-01-01", "reported_by": "income-register",
                      "subject": PSEUDONYM, "body": {"type": "employment_started", "employer": "jobvejen"}}).encode()
    result = _admit(raw, "institution:income-register")
    assert isinstance(result, Transition)
    assert result.subject == PSEUDONYM["pseudonym"]


# ---- the verifier and the ledger believe only the services that may write ---------------

def test_the_verifier_believes_transitions_from_ingest_and_contracts_and_ticks_from_operators() -> None:
    tick = ClockTick(today=dt.date(2024, 1, 1)).model_dump_json().encode()
    contract = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml").model_dump_json().encode()
    operator, ingest = RecordSigner.development("operator:dev"), RecordSigner.development("service:ingest")
    assert isinstance(admit_transition(consumed("ns.transitions.v1", b"clock", tick, operator), TRUST), ClockTick)
    assert admit_transition(consumed("ns.transitions.v1", b"clock", tick, ingest), TRUST).reason == (  # type: ignore[union-attr]
        "unauthenticated_transition")
    assert admit_transition(consumed("ns.transitions.v1", b"clock", tick, None), TRUST).reason == (  # type: ignore[union-attr]
        "unauthenticated_transition")
    assert not hasattr(admit_contract(consumed("ns.contracts.v1", b"c", contract, operator), TRUST), "reason")
    for forger in (ingest, RecordSigner.development("finance:dev"), None):
        refused = admit_contract(consumed("ns.contracts.v1", b"c", contract, forger), TRUST)
        assert refused.reason == "unauthenticated_contract"  # type: ignore[union-attr]


def test_the_ledger_believes_settlements_from_finance_and_the_journal_from_its_writers() -> None:
    settlement = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                            settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json().encode()
    finance, ledger = RecordSigner.development("finance:dev"), RecordSigner.development("service:ledger")
    assert isinstance(admit_settlement(consumed("ns.settlements.v1", b"k", settlement, finance), TRUST), Settlement)
    for forger in (None, ledger, RecordSigner("finance:x", Ed25519PrivateKey.generate())):
        refused = admit_settlement(consumed("ns.settlements.v1", b"k", settlement, forger), TRUST)
        assert refused.reason == "unauthenticated_settlement"  # type: ignore[union-attr]
    original = consumed("ns.settlements.v1", b"k", settlement, finance)
    as_forwarded = admit_settlement(original, TRUST).model_dump_json().encode()  # type: ignore[union-attr]
    assert isinstance(admit_journal(forwarded(TOPIC, b"k", as_forwarded, ledger, original), TRUST), Settlement)
    # Finance's own signature is for the settlements topic, not for the journal.
    replayed = consumed(TOPIC, b"k", settlement, finance, signed_topic="ns.settlements.v1")
    assert admit_journal(replayed, TRUST).reason == "unauthenticated_settlement"  # type: ignore[union-attr]


def test_a_forwarded_settlement_is_believed_on_finances_signed_original_not_the_forwarders_key() -> None:
    """Whoever holds the ledger's key cannot make a settlement finance never sent
    (services/ledger/origins.py): the journal record must carry finance's original."""
    paid = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                      settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json().encode()
    other = Settlement(settlement_id="s-2", payment_id="b" * 32, status=SettlementStatus.PAID,
                       settled_on=dt.date(2024, 1, 1), bank_reference="R2").model_dump_json().encode()
    finance, ledger = RecordSigner.development("finance:dev"), RecordSigner.development("service:ledger")
    # The forwarder puts the admitted settlement on the journal: naming its signer.
    original = consumed("ns.settlements.v1", b"k", paid, finance)
    paid = admit_settlement(original, TRUST).model_dump_json().encode()  # type: ignore[union-attr]
    refusals = {
        "no original": forwarded(TOPIC, b"k", paid, ledger, None),
        "an original the forwarder signed": forwarded(TOPIC, b"k", paid, ledger,
                                                      consumed("ns.settlements.v1", b"k", paid, ledger)),
        "an original from another installation": forwarded(TOPIC, b"k", paid, ledger,
                                                           consumed("other.settlements.v1", b"k", paid, finance)),
        "another settlement's original": forwarded(TOPIC, b"k", paid, ledger,
                                                   consumed("ns.settlements.v1", b"k", other, finance)),
    }
    for case, record in refusals.items():
        refused = admit_journal(record, TRUST)
        assert getattr(refused, "reason", None) == "unauthenticated_settlement", case
        assert refused.field == "origin", case  # type: ignore[union-attr]
    genuine = forwarded(TOPIC, b"k", paid, ledger, original)
    assert isinstance(admit_journal(genuine, TRUST), Settlement)
    # A tampered origin header (finance's bytes swapped, its signature kept) does not verify.
    from services.ledger.origins import ORIGIN_VALUE
    tampered = dataclasses.replace(genuine, headers=tuple((n, base64.b64encode(other) if n == ORIGIN_VALUE else v)
                                              for n, v in genuine.headers))
    assert getattr(admit_journal(tampered, TRUST), "reason", None) == "unauthenticated_settlement"


def test_an_upgraded_ledger_believes_forwarded_records_from_before_its_boundary_on_the_forwarders_key() -> None:
    """LEDGER_ORIGINS_REQUIRED_FROM: a journal written before forwarded records carried
    their originals keeps those records (a rebuild, verify); anything the broker stamped
    from the boundary on must carry its original (services/ledger/origins.py)."""
    paid = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                      settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json().encode()
    ledger = RecordSigner.development("service:ledger")
    boundary = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    upgraded = ledger_trust(Settings(stafet_env="development", ledger_origins_required_from=boundary))
    assert upgraded.originals_required_from_ms == int(boundary.timestamp() * 1000)
    before = forwarded(TOPIC, b"k", paid, ledger, None)  # stamped at 0: long before the boundary
    assert isinstance(admit_journal(before, upgraded), Settlement)
    after = dataclasses.replace(before, timestamp=upgraded.originals_required_from_ms)
    assert getattr(admit_journal(after, upgraded), "field", None) == "origin"
    # Without a boundary (a new installation) nothing is believed on the forwarder's key alone.
    assert getattr(admit_journal(before, TRUST), "field", None) == "origin"


def test_stafet_settle_names_bad_lines_and_will_not_sign_without_a_key_in_production(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"settlement_id": "s-1", "payment_id": "short", "status": "paid"}\n')
    refused = runner.invoke(app, ["settle", str(bad)])
    assert refused.exit_code == 2
    assert "bad.jsonl:1: payment_id" in refused.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                               settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json() + "\n")
    unsigned = runner.invoke(app, ["settle", str(good)], env={"STAFET_ENV": "production"})
    assert unsigned.exit_code == 2
    assert "SIGNING_KEY_FILE" in unsigned.stderr
