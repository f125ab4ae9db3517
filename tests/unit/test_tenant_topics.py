"""Topics per tenant (docs/tenancy.md, "Topics per tenant"): each tenant's contract versions
and settlements on topics of its own, which only its own Kafka logins may write, and which
the verifier, the ledger and the auditor read with the shared ones."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from shared.domain.events import Settlement, SettlementStatus
from shared.domain.signing import RecordSigner, development_key, private_hex
from shared.domain.tenancy import Tenancy, TenancyError, Tenant, TenantKind, topic_segment
from shared.platform.kafka_access import (
    LITERAL,
    LOCAL_PRINCIPALS,
    PREFIXED,
    Grant,
    Kind,
    Operation,
    Resource,
    namespace_acls,
    tenant_principal,
)
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.topics import (
    CONTRACTS,
    SETTLEMENTS,
    all_topics,
    in_namespace,
    is_of_kind,
    segment_in,
    segment_of,
    tenant_topic,
    topic_names,
)
from shared.platform.trust import trusted_keys
from tests.unit.test_signing import consumed, forwarded

TENANTS_FILE = REPO_ROOT / "examples" / "tenants.yaml"
EXAMPLE = Tenancy.from_file(TENANTS_FILE)
TENANT_TRUST = trusted_keys(Settings(tenants_file=TENANTS_FILE))
# A tenant whose id starts with "v" (a prefix `ns.contracts.v` would cover it), and one whose
# id is the start of another's ("vejle" of "vejle-nord").
TENANTS = ("sonderborg-kommune", "aabenraa-kommune", "vejle", "vejle-nord")


def allows(acls: list[tuple[str, Grant]], principal: str, topic: str, operation: Operation) -> bool:
    """What the broker's StandardAuthorizer decides for an ALLOW-only ACL set."""
    return any(name == principal and grant.resource == Resource.TOPIC and grant.operation == operation and (
        topic == grant.prefix if grant.pattern == LITERAL else topic.startswith(grant.prefix))
        for name, grant in acls)


def test_each_tenant_has_its_own_contracts_and_settlements_topics_named_by_its_segment() -> None:
    contracts = in_namespace(CONTRACTS, "ns")
    assert tenant_topic(contracts, "sonderborg-kommune").name == "ns.contracts.sonderborg-kommune.v1"
    assert tenant_topic(in_namespace(SETTLEMENTS, "ns"), "dk:fund.1").name == "ns.settlements.dk-fund-1.v1"
    own = tenant_topic(contracts, "sonderborg-kommune")
    assert (own.compacted, own.keep_forever, own.partitions) == (True, True, 1)
    names = [t.name for t in all_topics("ns", ("a-kommune",))]
    assert names[-2:] == ["ns.contracts.a-kommune.v1", "ns.settlements.a-kommune.v1"]
    assert len(names) == len(set(names)) == len(all_topics("ns")) + 2
    assert topic_names(contracts, ("a", "b")) == ("ns.contracts.v1", "ns.contracts.a.v1", "ns.contracts.b.v1")
    assert segment_of("ns.contracts.a-kommune.v1", contracts) == "a-kommune"
    assert segment_in("other.contracts.a-kommune.v1", CONTRACTS) == "a-kommune"
    for not_a_tenants in ("ns.contracts.v1", "other.contracts.a.v1", "ns.settlements.a.v1", "ns.contracts.a.b.v1"):
        assert segment_of(not_a_tenants, contracts) is None, not_a_tenants
    assert is_of_kind("ns.contracts.v1", contracts)
    assert not is_of_kind("other.contracts.v1", contracts)
    # Two tenants whose topics would be the same are refused.
    twins = [Tenant(id=i, name=i, kind=TenantKind.FUND) for i in ("dk.fund", "dk:fund")]
    assert topic_segment("dk.fund") == topic_segment("dk:fund")
    with pytest.raises(TenancyError, match="would share the topics of dk-fund"):
        Tenancy(twins)


def test_a_tenants_login_writes_its_own_topics_and_no_other_tenants() -> None:
    acls = namespace_acls("ns", LOCAL_PRINCIPALS, TENANTS)
    topics = [t.name for t in all_topics("ns", TENANTS)]
    write, read = Operation.WRITE, Operation.READ
    for tenant in TENANTS:
        operator, finance = tenant_principal(Kind.OPERATOR, tenant), tenant_principal(Kind.FINANCE, tenant)
        assert [t for t in topics if allows(acls, operator, t, write)] == [f"ns.contracts.{tenant}.v1"]
        assert [t for t in topics if allows(acls, finance, t, write)] == [
            "ns.investments.v1", f"ns.settlements.{tenant}.v1"]
        assert not [t for t in topics if allows(acls, operator, t, read) or allows(acls, finance, t, read)]
    # The clearing house's operator and finance logins write only the shared topics of the two.
    assert [t for t in topics if ".contracts." in t and allows(acls, "operator", t, write)] == ["ns.contracts.v1"]
    assert [t for t in topics if ".settlements." in t and allows(acls, "finance", t, write)] == [
        "ns.settlements.v1"]
    # The verifier and the auditor read every contracts topic, the ledger every settlements topic.
    for reader, kind in (("verifier", "contracts"), ("auditor", "contracts"), ("ledger", "settlements")):
        assert all(allows(acls, reader, t, read) for t in topics if f".{kind}." in t), reader
    # Nobody but these writes a tenant's topic.
    for topic in (t for t in topics if t.count(".") == 3):
        writers = {name for name, _ in acls if allows(acls, name, topic, write)}
        segment = topic.split(".")[2]
        assert writers == {f"tenant-{segment}-{'operator' if '.contracts.' in topic else 'finance'}"}, topic
    assert {g.pattern for _, g in acls} == {LITERAL, PREFIXED}


def test_the_verifier_takes_on_a_tenants_topic_only_that_tenants_versions() -> None:
    """Sønderborg's genuine version is believed on its own topic (and on the shared one,
    where versions were published before topics per tenant); on Aabenraa's topic it is
    refused, whoever signed it."""
    from services.verifier.authenticity import admit_contract
    from shared.domain.contracts.loader import load_contract
    from shared.domain.contracts.model import Contract, contract_record_key

    contract = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")  # sonderborg's
    signer = "operator:sonderborg-contracts"
    key, raw = contract_record_key(contract, signer), contract.model_dump_json().encode()

    def admitted(topic: str) -> Any:
        return admit_contract(consumed(topic, key, raw, RecordSigner.development(signer)), TENANT_TRUST, EXAMPLE)

    assert isinstance(admitted("ns.contracts.sonderborg-kommune.v1"), Contract)
    assert isinstance(admitted("ns.contracts.v1"), Contract)
    refused = admitted("ns.contracts.aabenraa-kommune.v1")
    assert refused.reason == "foreign_tenant_contract"
    assert "on the contracts topic of aabenraa-kommune" in refused.message


def test_the_journal_takes_a_settlement_forwarded_from_a_tenants_own_topic_of_this_installation() -> None:
    from services.ledger.authenticity import admit_journal, admit_settlement

    paid = Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                      settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json().encode()
    finance, ledger = RecordSigner.development("finance:sonderborg-finance"), RecordSigner.development("service:ledger")

    def journal(original_topic: str) -> Any:
        original = consumed(original_topic, b"k", paid, finance)
        as_forwarded = admit_settlement(original, TENANT_TRUST)
        assert isinstance(as_forwarded, Settlement)
        return admit_journal(forwarded("ns.payments.v1", b"k", as_forwarded.model_dump_json().encode(), ledger,
                                       original), TENANT_TRUST)

    assert isinstance(journal("ns.settlements.sonderborg-kommune.v1"), Settlement)
    assert isinstance(journal("ns.settlements.v1"), Settlement)
    for elsewhere in ("other.settlements.sonderborg-kommune.v1", "ns.contracts.sonderborg-kommune.v1",
                      "ns.settlements.a.b.v1"):
        refused = journal(elsewhere)
        assert getattr(refused, "reason", None) == "unauthenticated_settlement", elsewhere
        assert refused.field == "origin"


def test_contract_apply_and_settle_publish_on_the_signers_tenants_topic_as_its_login(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import cli.settle
    import cli.signed
    from cli.main import app

    sent: list[tuple[str, str, int]] = []

    async def send_signed(bootstrap: str, client_id: str, topic: str, records: list[Any], signer: Any, *,
                          principal: str, every_partition: bool = False) -> int:
        sent.append((topic, principal, len(records)))
        return len(records)

    monkeypatch.setattr(cli.signed, "send_signed", send_signed)
    monkeypatch.setattr(cli.settle, "send_signed", send_signed)
    runner = CliRunner()
    contract = REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"  # sonderborg's
    keys = {}
    for principal in ("operator:sonderborg-contracts", "finance:aabenraa-finance", "finance:dev"):
        keys[principal] = tmp_path / f"{principal.replace(':', '-')}.key"
        keys[principal].write_text(private_hex(development_key(principal)), encoding="utf-8")
    settlements = tmp_path / "settlements.jsonl"
    settlements.write_text(Settlement(settlement_id="s-1", payment_id="a" * 32, status=SettlementStatus.PAID,
                                      settled_on=dt.date(2024, 1, 1), bank_reference="R1").model_dump_json() + "\n")
    tenants = {"TENANTS_FILE": str(TENANTS_FILE), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    runs = [
        (["contract", "apply", str(contract), "--signing-key", str(keys["operator:sonderborg-contracts"])], tenants),
        (["settle", str(settlements), "--signing-key", str(keys["finance:aabenraa-finance"])], tenants),
        # The clearing house's finance key (no tenant's), and no tenants at all: the shared topics.
        (["settle", str(settlements), "--signing-key", str(keys["finance:dev"])], tenants),
        (["contract", "apply", str(contract), "--signing-key", str(keys["operator:sonderborg-contracts"])],
         {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}),
    ]
    for args, env in runs:
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
    assert sent == [("stafet.contracts.sonderborg-kommune.v1", "tenant-sonderborg-kommune-operator", 1),
                    ("stafet.settlements.aabenraa-kommune.v1", "tenant-aabenraa-kommune-finance", 1),
                    ("stafet.settlements.v1", "finance", 1),
                    ("stafet.contracts.v1", "operator", 1)]


async def test_contract_versions_of_several_topics_are_taken_in_broker_order_whatever_order_they_were_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A contract id is its first version's payer's; across topics "first" is the broker's
    stamp (LogAppendTime), then the topic's place, then the offset: the verifier at start and
    `stafet audit` take them so, however the topics are read or interleaved."""
    from aiokafka import ConsumerRecord

    import services.verifier.rebuild as rebuild

    def record(topic: str, offset: int, timestamp: int) -> ConsumerRecord[Any, Any]:
        return ConsumerRecord(topic=topic, partition=0, offset=offset, timestamp=timestamp, timestamp_type=1,
                              key=None, value=b"", checksum=None, serialized_key_size=0, serialized_value_size=0,
                              headers=())

    on = {"ns.contracts.v1": [record("ns.contracts.v1", 0, 10), record("ns.contracts.v1", 1, 30)],
          "ns.contracts.a.v1": [record("ns.contracts.a.v1", 0, 20), record("ns.contracts.a.v1", 1, 30)],
          "ns.contracts.b.v1": [record("ns.contracts.b.v1", 0, 5)]}

    async def read_records(bootstrap: str, topic: str, principal: str = "verifier", *,
                           missing_ok: bool = False) -> list[ConsumerRecord[Any, Any]]:
        assert missing_ok, "a tenant's topic not made yet is no error here"
        return list(reversed(on.get(topic, [])))  # whatever order a read gives

    monkeypatch.setattr(rebuild, "read_records", read_records)
    topics = ("ns.contracts.v1", "ns.contracts.a.v1", "ns.contracts.b.v1", "ns.contracts.missing.v1")
    found = [(r.topic, r.offset) for r in await rebuild.read_in_broker_order("x", topics)]
    assert found == [("ns.contracts.b.v1", 0), ("ns.contracts.v1", 0), ("ns.contracts.a.v1", 0),
                     ("ns.contracts.v1", 1), ("ns.contracts.a.v1", 1)]


def test_access_user_with_a_tenant_grants_that_tenants_own_topics_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import shared.platform.kafka_access as kafka_access
    from cli.main import app

    granted: list[tuple[str, Grant]] = []

    class Access:
        def __init__(self, bootstrap: str, settings: Any = None) -> None:
            pass

        async def __aenter__(self) -> Access:
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        async def upsert_users(self, passwords: dict[str, str]) -> None:
            assert set(passwords) == {"kmd-sonderborg"}

        async def grant(self, acls: list[tuple[str, Grant]]) -> int:
            granted.extend(acls)
            return len(acls)

    monkeypatch.setattr(kafka_access, "KafkaAccess", Access)
    monkeypatch.setenv("TENANTS_FILE", str(TENANTS_FILE))
    password = tmp_path / "password"
    password.write_text("a password long enough", encoding="utf-8")
    runner = CliRunner()
    args = ["access", "user", "kmd-sonderborg", "--password-file", str(password), "--namespace", "ns"]
    result = runner.invoke(app, [*args, "--kind", "finance", "--tenant", "sonderborg-kommune"])
    assert result.exit_code == 0, result.output
    assert "(finance, tenant sonderborg-kommune): password set, 2 ACL(s)" in result.stdout
    assert [(g.prefix, g.operation, g.pattern) for _, g in granted] == [
        ("ns.settlements.sonderborg-kommune.", Operation.WRITE, PREFIXED), ("ns.investments.", Operation.WRITE, PREFIXED)]
    refused = runner.invoke(app, [*args, "--kind", "institution", "--tenant", "sonderborg-kommune"])
    assert refused.exit_code == 2
    assert "a tenant's own login is an operator's or a finance office's, not institution" in refused.stderr
    typo = runner.invoke(app, [*args, "--kind", "finance", "--tenant", "sonderborg-kommun"])
    assert typo.exit_code == 2
    assert "'sonderborg-kommun' is not a tenant of TENANTS_FILE" in typo.stderr
    monkeypatch.delenv("TENANTS_FILE")
    unset = runner.invoke(app, [*args, "--kind", "finance", "--tenant", "sonderborg-kommune"])
    assert unset.exit_code == 2
    assert "--tenant needs TENANTS_FILE" in unset.stderr
    assert len(granted) == 2  # nothing granted by the refused ones
