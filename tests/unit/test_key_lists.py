"""Keys that end: windows, revocations, signed lists, and no development key in production."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.main import app
from services.ledger.authenticity import admit_settlement
from shared.domain.events import Settlement, SettlementStatus
from shared.domain.key_lists import KeyList, ListedKey, Revocation, RevocationList, sign_document
from shared.domain.principals import Principal, Role, SignatureProblem, Unauthenticated
from shared.domain.signing import RecordSigner, key_id_of, private_hex, public_bytes
from shared.platform.settings import Settings
from shared.platform.trust import ConfigurationError, trusted_keys

TOPIC = "ns.settlements.v1"
ROOT = Ed25519PrivateKey.generate()
ROOT_HEX = public_bytes(ROOT.public_key()).hex()
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
runner = CliRunner()


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _record(value: bytes, signer: RecordSigner, at: dt.datetime, topic: str = TOPIC) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(topic=topic, partition=0, offset=0, timestamp=_ms(at), timestamp_type=1, key=b"k",
                          value=value, checksum=None, serialized_key_size=1, serialized_value_size=len(value),
                          headers=tuple(signer.headers(topic, b"k", value)))


def _hex(key: Ed25519PrivateKey) -> str:
    return public_bytes(key.public_key()).hex()


def _write(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def _settings(tmp_path: Path, keys: list[ListedKey], revoked: list[Revocation] = (), *,  # type: ignore[assignment]
              root: Ed25519PrivateKey = ROOT, env: str = "production") -> Settings:
    listed = _write(tmp_path / "keys.yaml", sign_document(KeyList(issued_at=T0, keys=tuple(keys)), root))
    revocations = _write(tmp_path / "revoked.yaml",
                         sign_document(RevocationList(issued_at=T0, revoked=tuple(revoked)), root))
    return Settings(stafet_env=env, trusted_keys_file=listed, revoked_keys_file=revocations,
                    trust_root_keys=ROOT_HEX)


SETTLEMENT = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                        settled_on=dt.date(2026, 1, 2), bank_reference="R1").model_dump_json().encode()


def test_a_retired_key_verifies_what_it_signed_inside_its_window_and_nothing_after(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    retired = T0 + dt.timedelta(days=30)
    trust = trusted_keys(_settings(tmp_path, [
        ListedKey(principal="finance:kommune", public_key=_hex(old), not_after=retired),
        ListedKey(principal="finance:kommune", public_key=_hex(new), not_before=retired)]))
    finance = Principal(Role.FINANCE, "kommune")
    old_signer, new_signer = RecordSigner("finance:kommune", old), RecordSigner("finance:kommune", new)
    before, after = retired - dt.timedelta(days=1), retired + dt.timedelta(seconds=1)
    assert trust.authenticate_record(_record(SETTLEMENT, old_signer, before)) == finance
    assert trust.authenticate_record(_record(SETTLEMENT, new_signer, after)) == finance
    for signer, when in ((old_signer, after), (new_signer, before)):
        refused = trust.authenticate_record(_record(SETTLEMENT, signer, when))
        assert isinstance(refused, Unauthenticated)
        assert refused.problem == SignatureProblem.EXPIRED_KEY
    assert isinstance(admit_settlement(_record(SETTLEMENT, old_signer, before), trust), Settlement)
    assert admit_settlement(_record(SETTLEMENT, old_signer, after), trust).reason == (  # type: ignore[union-attr]
        "unauthenticated_settlement")


def test_a_revoked_keys_settlement_is_refused_and_since_keeps_what_came_before(tmp_path: Path) -> None:
    stolen, careless = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    leaked_on = T0 + dt.timedelta(days=10)
    trust = trusted_keys(_settings(tmp_path, [
        ListedKey(principal="finance:kommune", public_key=_hex(stolen)),
        ListedKey(principal="finance:region", public_key=_hex(careless))], [
        Revocation(key_id=key_id_of(stolen.public_key()), reason="stolen laptop"),
        Revocation(key_id=key_id_of(careless.public_key()), reason="left in a repository", since=leaked_on)]))
    stolen_signer, careless_signer = RecordSigner("finance:kommune", stolen), RecordSigner("finance:region", careless)
    for when in (T0, leaked_on + dt.timedelta(days=1)):
        refused = admit_settlement(_record(SETTLEMENT, stolen_signer, when), trust)
        assert refused.reason == "unauthenticated_settlement"  # type: ignore[union-attr]
        assert "revoked_key" in refused.message  # type: ignore[union-attr]
    assert isinstance(admit_settlement(_record(SETTLEMENT, careless_signer, T0), trust), Settlement)
    late = trust.authenticate_record(_record(SETTLEMENT, careless_signer, leaked_on))
    assert isinstance(late, Unauthenticated)
    assert late.problem == SignatureProblem.REVOKED_KEY


def test_a_development_key_revoked_in_development_settles_nothing(tmp_path: Path) -> None:
    """The attack: the well-known development finance key settled a payment."""
    development = RecordSigner.development("finance:dev")
    revocations = _write(tmp_path / "revoked.yaml", sign_document(RevocationList(issued_at=T0, revoked=(
        Revocation(key_id=development.key_id, reason="well known"),)), ROOT))
    trust = trusted_keys(Settings(stafet_env="development", revoked_keys_file=revocations, trust_root_keys=ROOT_HEX))
    refused = admit_settlement(_record(SETTLEMENT, development, T0), trust)
    assert refused.reason == "unauthenticated_settlement"  # type: ignore[union-attr]
    assert isinstance(admit_settlement(_record(SETTLEMENT, development, T0), trusted_keys(Settings(
        stafet_env="development"))), Settlement)


def test_a_list_altered_after_signing_or_signed_by_no_root_does_not_load(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    settings = _settings(tmp_path, [ListedKey(principal="finance:kommune", public_key=_hex(key),
                                              not_after=T0 + dt.timedelta(days=1))])
    assert settings.trusted_keys_file is not None
    assert settings.revoked_keys_file is not None
    listed = yaml.safe_load(settings.trusted_keys_file.read_text())
    listed["keys"][0]["not_after"] = "2099-01-01T00:00:00Z"  # the window stretched by whoever edits files
    _write(settings.trusted_keys_file, listed)
    with pytest.raises(ConfigurationError, match="does not verify"):
        trusted_keys(settings)
    stranger = Ed25519PrivateKey.generate()
    _write(settings.trusted_keys_file, sign_document(KeyList(issued_at=T0, keys=()), stranger))
    with pytest.raises(ConfigurationError, match="not a trust root"):
        trusted_keys(settings)
    _write(settings.trusted_keys_file, sign_document(KeyList(issued_at=T0, keys=()), ROOT))
    lifted = yaml.safe_load(settings.revoked_keys_file.read_text())
    lifted["revoked"] = [{"key_id": key_id_of(key.public_key()), "reason": "x"}]
    _write(settings.revoked_keys_file, lifted)
    with pytest.raises(ConfigurationError, match="revocation list"):
        trusted_keys(settings)


def test_development_keys_refuse_to_load_in_production(tmp_path: Path) -> None:
    development_root = _hex(RecordSigner.development("operator:dev").key)
    with pytest.raises(ConfigurationError, match="trust root"):
        trusted_keys(Settings(stafet_env="production", trust_root_keys=development_root))
    listed = [ListedKey(principal="service:ledger", public_key=_hex(RecordSigner.development("service:ledger").key))]
    with pytest.raises(ConfigurationError, match="development key"):
        trusted_keys(_settings(tmp_path, listed))
    # The same list loads in development, where operator:dev's well-known key is a root too.
    assert len(trusted_keys(_settings(tmp_path, listed, env="development"))) > 1
    unsigned_by_root = _write(tmp_path / "dev-signed.yaml", sign_document(
        KeyList(issued_at=T0, keys=()), RecordSigner.development("operator:dev").key))
    with pytest.raises(ConfigurationError, match="not a trust root"):
        trusted_keys(Settings(stafet_env="production", trusted_keys_file=unsigned_by_root, trust_root_keys=ROOT_HEX))


def test_keys_sign_list_and_revoke_write_lists_the_receivers_load(tmp_path: Path) -> None:
    root_file = tmp_path / "root.key"
    root_file.write_text(private_hex(ROOT))
    finance = Ed25519PrivateKey.generate()
    source = _write(tmp_path / "source.yaml", {"keys": [
        {"principal": "finance:kommune", "public_key": _hex(finance), "not_after": "2030-01-01T00:00:00Z"}]})
    env = {"STAFET_ENV": "production", "TRUST_ROOT_KEYS": ROOT_HEX}
    signed = tmp_path / "trusted.yaml"
    result = runner.invoke(app, ["keys", "sign-list", str(source), "--out", str(signed), "--signing-key", str(root_file)],
                           env=env)
    assert result.exit_code == 0, result.output
    revoked = tmp_path / "revoked.yaml"
    for reason in ("stolen", "again"):
        result = runner.invoke(app, ["keys", "revoke", key_id_of(finance.public_key()), "--reason", reason,
                                     "--list", str(revoked), "--signing-key", str(root_file)], env=env)
        assert result.exit_code == 0, result.output
    assert len(yaml.safe_load(revoked.read_text())["revoked"]) == 2  # the first revocation was kept
    trust = trusted_keys(Settings(stafet_env="production", trusted_keys_file=signed, revoked_keys_file=revoked,
                                  trust_root_keys=ROOT_HEX))
    refused = trust.authenticate_record(_record(SETTLEMENT, RecordSigner("finance:kommune", finance), T0))
    assert isinstance(refused, Unauthenticated)
    assert refused.problem == SignatureProblem.REVOKED_KEY
    other = tmp_path / "other.key"
    other.write_text(private_hex(Ed25519PrivateKey.generate()))
    refused_signer = runner.invoke(app, ["keys", "sign-list", str(source), "--out", str(signed),
                                         "--signing-key", str(other)], env=env)
    assert refused_signer.exit_code == 2
    assert "not a trust root" in refused_signer.stderr
