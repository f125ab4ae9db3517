"""Tenants (shared/domain/tenancy.py, docs/tenancy.md): who may act for which payer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.journal import SettlementRejection, plan_journal
from shared.domain.principals import Principal, Role
from shared.domain.tenancy import Tenancy, TenancyError, TenancyRefusal, Tenant, TenantKind
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.trust import ConfigurationError, trusted_keys

A = Tenant(id="a-kommune", name="A", kind=TenantKind.MUNICIPALITY, operators=("a-ops", "a-contracts"),
           contract_signers=("a-contracts",), finance=("a-finance",), database_roles=("stafet_tenant_a",))
B = Tenant(id="b-fund", name="B", kind=TenantKind.FUND, operators=("b-ops",), finance=("b-finance",))
TENANCY = Tenancy([A, B], clearing_house_operators=("clock",))


def operator(name: str) -> Principal:
    return Principal(Role.OPERATOR, name)


def test_only_the_payers_contract_signers_may_publish_its_contracts() -> None:
    assert TENANCY.contract_refusal(operator("a-contracts"), "a-kommune") is None
    assert TENANCY.contract_refusal(operator("b-ops"), "b-fund") is None  # no signers listed: its operators
    refusals = {
        "other tenant's operator": TENANCY.contract_refusal(operator("b-ops"), "a-kommune"),
        "own operator, not a signer": TENANCY.contract_refusal(operator("a-ops"), "a-kommune"),
        "clearing house operator": TENANCY.contract_refusal(operator("clock"), "a-kommune"),
        "a finance key": TENANCY.contract_refusal(Principal(Role.FINANCE, "a-finance"), "a-kommune"),
    }
    assert {k: r.reason if r else None for k, r in refusals.items()} == dict.fromkeys(
        refusals, TenancyRefusal.FOREIGN_TENANT_CONTRACT)
    unknown = TENANCY.contract_refusal(operator("a-contracts"), "c-region")
    assert unknown is not None
    assert unknown.reason == TenancyRefusal.UNKNOWN_PAYER_TENANT


def test_a_contract_keeps_its_payer_across_versions() -> None:
    assert TENANCY.contract_refusal(operator("a-contracts"), "a-kommune", earlier_payer="a-kommune") is None
    moved = TENANCY.contract_refusal(operator("a-contracts"), "a-kommune", earlier_payer="b-fund")
    assert moved is not None
    assert moved.reason == TenancyRefusal.CONTRACT_PAYER_CHANGED
    assert "b-fund" in moved.message


def test_a_finance_key_settles_only_its_own_payers_payments() -> None:
    assert TENANCY.settlement_refusal("finance:a-finance", "a-kommune") is None
    assert TENANCY.settlement_refusal("finance:b-finance", "b-fund") is None
    for who, payer in (("finance:b-finance", "a-kommune"), ("finance:a-finance", "b-fund"),
                       ("finance:dev", "a-kommune"), ("operator:a-contracts", "a-kommune"),
                       ("finance:a-finance", "not-a-tenant")):
        refusal = TENANCY.settlement_refusal(who, payer)
        assert refusal is not None, (who, payer)
        assert refusal.reason == TenancyRefusal.FOREIGN_TENANT_SETTLEMENT, (who, payer)
        assert who in refusal.message
        assert payer in refusal.message


def test_only_the_clearing_house_moves_the_clock_once_it_names_its_operators() -> None:
    assert TENANCY.may_tick(operator("clock"))
    assert not TENANCY.may_tick(operator("a-ops"))
    assert not TENANCY.may_tick(Principal(Role.FINANCE, "clock"))
    assert Tenancy([A]).may_tick(operator("a-ops"))  # none named: any operator (one payer)


def test_a_principal_has_one_tenant() -> None:
    twice = B.model_copy(update={"finance": ("a-finance",)})
    with pytest.raises(TenancyError, match="finance:a-finance acts for a-kommune and b-fund"):
        Tenancy([A, twice])
    with pytest.raises(TenancyError, match="listed twice"):
        Tenancy([A, A])
    with pytest.raises(TenancyError, match="clearing house"):
        Tenancy([A], clearing_house_operators=("a-ops",))
    with pytest.raises(ValueError, match="contract_signers must be among its operators: b-ops"):
        Tenant(id="x", name="x", kind=TenantKind.REGION, operators=("a",), contract_signers=("b-ops",))
    assert TENANCY.tenant_of(Principal(Role.FINANCE, "b-finance")) == "b-fund"
    assert TENANCY.tenant_of("role:stafet_tenant_a") == "a-kommune"
    assert TENANCY.tenant_of(operator("clock")) is None


def test_the_example_file_loads_and_a_broken_one_names_its_field(tmp_path: Path) -> None:
    tenancy = Tenancy.from_file(REPO_ROOT / "examples" / "tenants.yaml")
    assert {t.id for t in tenancy.all()} >= {"sonderborg-kommune", "aabenraa-kommune"}
    broken = tmp_path / "tenants.yaml"
    broken.write_text("tenants:\n  - {id: x, name: X, kind: county}\n", encoding="utf-8")
    with pytest.raises(TenancyError, match=r"tenants\.yaml: tenants\.0\.kind"):
        Tenancy.from_file(broken)


def test_in_development_the_tenants_principals_development_keys_are_trusted(tmp_path: Path) -> None:
    tenants = REPO_ROOT / "examples" / "tenants.yaml"
    trusted = {str(p) for p in trusted_keys(Settings(tenants_file=tenants)).principals().values()}
    assert {"finance:aabenraa-finance", "operator:sonderborg-contracts"} <= trusted
    assert "finance:aabenraa-finance" not in {str(p) for p in trusted_keys(Settings()).principals().values()}
    broken = tmp_path / "tenants.yaml"
    broken.write_text("tenants: 3\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="TENANTS_FILE"):
        trusted_keys(Settings(tenants_file=broken))


PAYMENT = PaymentInstruction(
    payment_id="a" * 32, kind=PaymentKind.PAYMENT, contract_id="c", contract_version=1, outcome_id="o",
    subject="k1:" + "0" * 64, payer="a-kommune", payee="school-in-b", amount_minor=500_000, currency="DKK",
    occurred_on=dt.date(2024, 1, 1))


def settlement(n: int, by: str | None, status: SettlementStatus = SettlementStatus.PAID) -> Settlement:
    extra = {"bank_reference": f"B-{n}"} if status == SettlementStatus.PAID else {"reason": "AC04"}
    return Settlement(settlement_id=f"s-{n}", payment_id=PAYMENT.payment_id, status=status,
                      settled_on=dt.date(2024, 2, 1), settled_by=by, **extra)  # type: ignore[arg-type]


def test_the_journal_refuses_another_tenants_settlement_and_return_and_takes_its_own() -> None:
    records = [PAYMENT, settlement(1, "finance:b-finance"), settlement(2, "finance:a-finance"),
               settlement(3, "finance:b-finance", SettlementStatus.RETURNED),
               settlement(4, "finance:a-finance", SettlementStatus.RETURNED)]
    plan = plan_journal(records, {}, TENANCY)
    assert [e.kind for e in plan.entries] == ["payment", "settled", "returned"]
    assert [(r.settlement.settlement_id, r.reason) for r in plan.rejected] == [
        ("s-1", SettlementRejection.FOREIGN_TENANT_SETTLEMENT), ("s-3", SettlementRejection.FOREIGN_TENANT_SETTLEMENT)]
    # Without tenants (one payer's installation), any finance key settles, as before.
    single = plan_journal(records[:2], {})
    assert [e.kind for e in single.entries] == ["payment", "settled"]
    # A settlement forwarded before the ledger named its signer replays as it was decided.
    assert [e.kind for e in plan_journal([PAYMENT, settlement(5, None)], {}, TENANCY).entries] == [
        "payment", "settled"]


# ---- the services' admission, with tenants ----------------------------------------------

TENANTS_FILE = REPO_ROOT / "examples" / "tenants.yaml"
EXAMPLE = Tenancy.from_file(TENANTS_FILE)
TENANT_TRUST = trusted_keys(Settings(tenants_file=TENANTS_FILE))


def test_the_verifier_takes_a_contract_only_from_its_payers_signers_and_the_clock_from_the_clearing_house(
) -> None:
    from services.verifier.authenticity import admit_contract, admit_transition
    from shared.domain.contracts.loader import load_contract
    from shared.domain.events import ClockTick
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import consumed

    contract = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")  # sonderborg's
    raw = contract.model_dump_json().encode()

    def admitted(signer: str, earlier: str | None = None) -> object:
        record = consumed("ns.contracts.v1", b"c", raw, RecordSigner.development(signer))
        found = admit_contract(record, TENANT_TRUST, EXAMPLE, lambda _: earlier)
        return getattr(found, "reason", "admitted")

    assert admitted("operator:sonderborg-contracts") == "admitted"
    assert admitted("operator:sonderborg-ops") == "foreign_tenant_contract"  # not its contract signer
    assert admitted("operator:aabenraa-ops") == "foreign_tenant_contract"
    assert admitted("operator:dev") == "foreign_tenant_contract"  # the clearing house's: the clock only
    assert admitted("operator:sonderborg-contracts", earlier="aabenraa-kommune") == "contract_payer_changed"
    tick = ClockTick(today=dt.date(2024, 1, 1)).model_dump_json().encode()
    by = {s: admit_transition(consumed("ns.transitions.v1", b"clock", tick, RecordSigner.development(s)),
                              TENANT_TRUST, EXAMPLE) for s in ("operator:dev", "operator:aabenraa-ops")}
    assert isinstance(by["operator:dev"], ClockTick)
    assert getattr(by["operator:aabenraa-ops"], "reason", None) == "unauthenticated_transition"


def test_another_tenants_record_of_a_version_cannot_displace_the_genuine_one_on_the_compacted_topic() -> None:
    """The contracts topic is compacted: the broker keeps the latest record per key. Aabenraa
    publishes Sønderborg's contract at its next version, once naming itself (refused live:
    contract_payer_changed) and once naming Sønderborg (foreign_tenant_contract), after
    Sønderborg's genuine version. After compaction a verifier reading afresh (as `stafet
    audit` does) must still hold Sønderborg's version."""
    from services.verifier.authenticity import admit_contract
    from shared.domain.contracts.loader import load_contract
    from shared.domain.contracts.model import Contract, contract_record_key
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import consumed

    first = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")  # sonderborg's
    genuine = first.model_copy(update={"version": first.version + 1})
    foreign = genuine.model_copy(update={"payer": "aabenraa-kommune", "title": "Aabenraa's now"})
    published = [(first, "operator:sonderborg-contracts"), (genuine, "operator:sonderborg-contracts"),
                 (foreign, "operator:aabenraa-ops"), (genuine, "operator:aabenraa-ops")]
    compacted: dict[bytes, tuple[Contract, str]] = {}
    for contract, signer in published:  # the latest record per key survives, in first-offset order
        compacted.pop(key := contract_record_key(contract, signer), None)
        compacted[key] = (contract, signer)
    assert len(compacted) == len(published)  # no record displaced another
    held: list[Contract] = []
    for contract, signer in compacted.values():
        record = consumed("ns.contracts.v1", contract_record_key(contract, signer),
                          contract.model_dump_json().encode(), RecordSigner.development(signer))
        found = admit_contract(record, TENANT_TRUST, EXAMPLE,
                               lambda contract_id: next((c.payer for c in held if c.contract_id == contract_id), None))
        if isinstance(found, Contract):
            held.append(found)
    assert held == [first, genuine]
    assert contract_record_key(genuine, "operator:sonderborg-contracts") == (
        f"sonderborg-kommune/{genuine.contract_id}@{genuine.version}/operator:sonderborg-contracts".encode())


def test_the_ledger_forwards_a_settlement_naming_the_signer_the_signature_proves() -> None:
    from services.ledger.authenticity import admit_settlement
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import consumed

    claimed = settlement(1, "finance:sonderborg-finance").model_dump_json().encode()  # a lie in the record
    record = consumed("ns.settlements.v1", b"a", claimed, RecordSigner.development("finance:aabenraa-finance"))
    admitted = admit_settlement(record, TENANT_TRUST)
    assert isinstance(admitted, Settlement)
    assert admitted.settled_by == "finance:aabenraa-finance"


# ---- the operator's command line says before publishing what the verifiers would refuse --

def test_contract_check_and_apply_refuse_a_payer_that_is_no_tenant_or_a_key_that_is_not_its_signer(
        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app
    from shared.domain.signing import development_key, private_hex

    runner = CliRunner()
    env = {"TENANTS_FILE": str(TENANTS_FILE), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing is reached
    ours = REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"  # payer: sonderborg-kommune
    fifa = REPO_ROOT / "examples" / "contracts" / "fifa-solidarity.yaml"  # payer: new-club, no tenant
    checked = runner.invoke(app, ["contract", "check", str(ours), str(fifa)], env=env)
    assert checked.exit_code == 2, checked.output
    assert "payer: unknown_payer_tenant: new-club is no tenant of this clearing house" in checked.stderr
    assert f"ok: {ours}" in checked.stdout
    assert runner.invoke(app, ["contract", "check", str(fifa)]).exit_code == 0  # no tenants: as before
    key = tmp_path / "aabenraa-ops.key"
    key.write_text(private_hex(development_key("operator:aabenraa-ops")), encoding="utf-8")
    applied = runner.invoke(app, ["contract", "apply", str(ours), "--signing-key", str(key)], env=env)
    assert applied.exit_code == 2, applied.output
    assert applied.stderr.startswith("error: next-stage-bonus v1: foreign_tenant_contract: signed by"
                                     " operator:aabenraa-ops, who is not a contract signer of sonderborg-kommune"), (
        applied.stderr)
    assert "(nothing applied)" in applied.stderr


def test_a_funds_budget_and_savings_count_only_from_the_payers_own_finance_office() -> None:
    from services.ledger.authenticity import Refused, admit_investment
    from shared.domain.investment.records import FundEstablished, SavingsReturned
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import consumed

    fund = FundEstablished(fund="sonderborg-social-investment-fund", payer="sonderborg-kommune",
                           budget_minor=1_000_000_00, currency="DKK", established_on=dt.date(2024, 1, 1))
    savings = SavingsReturned(return_id="r-1", fund="sonderborg-social-investment-fund", contract_id="c",
                              payer="sonderborg-kommune", amount_minor=10_000_00, currency="DKK",
                              returned_on=dt.date(2025, 1, 1))
    for record in (fund, savings):
        raw = record.model_dump_json().encode()

        def signed(signer: str, raw: bytes = raw) -> object:
            return admit_investment(consumed("ns.investments.v1", b"f", raw, RecordSigner.development(signer)),
                                    TENANT_TRUST, EXAMPLE)

        assert signed("finance:sonderborg-finance") == record
        refused = signed("finance:aabenraa-finance")
        assert isinstance(refused, Refused)
        assert (refused.reason, refused.field) == ("foreign_tenant_investment", "payer")
        # Without tenants any finance office's signature is taken, as before.
        assert admit_investment(consumed("ns.investments.v1", b"f", raw,
                                         RecordSigner.development("finance:aabenraa-finance")), TENANT_TRUST) == record


def test_the_journal_re_applies_the_tenant_rule_to_a_forwarded_funds_budget_and_savings() -> None:
    """A fund's budget or savings forwarded onto the journal with another tenant's finance
    signature on its original (a forwarder without TENANTS_FILE, or one key holder of the
    ledger): the journal's re-check of the original refuses it as the forwarder would,
    live, on rebuild and in `stafet ledger verify` (they all call admit_journal)."""
    from services.ledger.authenticity import Refused, admit_journal
    from services.ledger.provenance import SourceRecord, derivation_problem
    from shared.domain.investment.records import FundEstablished, SavingsReturned
    from shared.domain.signing import RecordSigner
    from tests.unit.test_signing import consumed, forwarded

    ledger = RecordSigner.development("service:ledger")
    fund = FundEstablished(fund="sonderborg-social-investment-fund", payer="sonderborg-kommune",
                           budget_minor=1_000_000_00, currency="DKK", established_on=dt.date(2024, 1, 1))
    savings = SavingsReturned(return_id="r-1", fund="sonderborg-social-investment-fund", contract_id="c",
                              payer="sonderborg-kommune", amount_minor=10_000_00, currency="DKK",
                              returned_on=dt.date(2025, 1, 1))
    for record in (fund, savings):
        raw = record.model_dump_json().encode()

        def on_journal(finance: str, raw: bytes = raw) -> object:
            original = consumed("ns.investments.v1", b"f", raw, RecordSigner.development(finance))
            return forwarded("ns.payments.v1", b"f", raw, ledger, original)

        assert admit_journal(on_journal("finance:sonderborg-finance"), TENANT_TRUST, EXAMPLE) == record
        refused = admit_journal(on_journal("finance:aabenraa-finance"), TENANT_TRUST, EXAMPLE)
        assert isinstance(refused, Refused)
        assert (refused.reason, refused.field) == ("foreign_tenant_investment", "payer")
        # Without tenants any finance office's original is taken, as before.
        assert admit_journal(on_journal("finance:aabenraa-finance"), TENANT_TRUST) == record
        # `stafet ledger verify`: an entry made of such a record is unproven.
        source = SourceRecord.of(on_journal("finance:aabenraa-finance"))  # type: ignore[arg-type]
        problem = derivation_problem({}, source, TENANT_TRUST, "ns.payments.v1", {}, EXAMPLE)
        assert "foreign_tenant_investment" in problem


def test_with_tenants_an_investment_closes_only_by_its_contracts_payers_finance_office() -> None:
    """A close fixes the investor's verdict: another payer's finance key may not send it,
    neither naming the real payer (the signer is checked) nor naming itself (the journal
    checks the named payer against the contract's payments), on the forwarder and on the
    journal's re-check of the original alike."""
    from decimal import Decimal

    from services.ledger.authenticity import Refused, admit_investment, admit_journal
    from shared.domain.investment.records import InvestmentClosed
    from shared.domain.ledger.investments import (
        InvestmentBook,
        InvestmentRefusal,
        entry_id_of,
        plan_investments,
        record_json,
    )
    from shared.domain.signing import RecordSigner
    from tests.unit.test_investment_ledger import commit, disburse
    from tests.unit.test_signing import consumed, forwarded

    def close(payer: str | None) -> InvestmentClosed:
        return InvestmentClosed(investor="nordic-impact-investor", contract_id="sib", closed_on=dt.date(2030, 12, 31),
                                max_return=Decimal("0.20"), payer=payer)

    def reason(record: InvestmentClosed, finance: str, tenancy: Tenancy | None = EXAMPLE) -> str:
        raw = record.model_dump_json().encode()
        original = consumed("ns.investments.v1", b"k", raw, RecordSigner.development(finance))
        live = admit_investment(original, TENANT_TRUST, tenancy)
        on_journal = admit_journal(forwarded("ns.payments.v1", b"k", raw, RecordSigner.development("service:ledger"),
                                             original), TENANT_TRUST, tenancy)
        assert type(live) is type(on_journal)  # the forwarder and the journal agree
        return on_journal.reason if isinstance(on_journal, Refused) else "admitted"

    assert reason(close("sonderborg-kommune"), "finance:sonderborg-finance") == "admitted"
    assert reason(close("sonderborg-kommune"), "finance:aabenraa-finance") == "foreign_tenant_investment"
    assert reason(close(None), "finance:sonderborg-finance") == "foreign_tenant_investment"  # must name its payer
    assert reason(close(None), "finance:aabenraa-finance", tenancy=None) == "admitted"  # one payer: as before
    # Aabenraa names itself: its own finance key passes the signer check, but the journal
    # knows the contract's payments name Sønderborg.
    assert reason(close("aabenraa-kommune"), "finance:aabenraa-finance") == "admitted"
    book = InvestmentBook(payers={"sib": {"sonderborg-kommune"}})
    plan_investments([commit("c1", 1000), disburse("d1", "c1", 600)], book)
    refused = plan_investments([close("aabenraa-kommune")], book)
    assert [r.reason for r in refused.refused] == [InvestmentRefusal.CLOSE_PAYER_MISMATCH]
    assert [e.entry_id for e in plan_investments([close("sonderborg-kommune")], book).entries] == [
        entry_id_of(close(None))]
    # A close chained before closes named a payer keeps its content (and so its hash).
    assert "payer" not in record_json(close(None))
    assert record_json(close("sonderborg-kommune"))["payer"] == "sonderborg-kommune"


def test_a_tenants_contract_decides_nothing_about_a_child_never_registered_in_its_municipality() -> None:
    from collections import defaultdict

    from cli.synthetic.nation import generate_nation
    from cli.synthetic.population import to_json_line
    from shared.domain.contracts.book import ContractBook
    from shared.domain.contracts.evaluation import RejectionReason
    from shared.domain.decisions import decide_all
    from shared.domain.events import Transition
    from shared.domain.institutions import InstitutionRegistry
    from tests.engine_replay import admitted, directory_of

    nation = generate_nation(3, 60, 11)
    registry = InstitutionRegistry(nation.institutions)
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in admitted([to_json_line(e) for e in nation.events], registry):
        streams[transition.subject].append(transition)
    effects = decide_all(ContractBook.of(list(nation.contracts)).in_force(), streams, dt.date(2026, 6, 30),
                         directory_of(registry))
    seen_reasons: set[object] = set()
    for subject, stream in streams.items():
        towns = {nation.municipality_of(t.reported_by) for t in stream}
        decided = {d.contract_id.removesuffix("-next-stage") for d in effects[subject].decisions}
        assert decided == towns & set(nation.municipalities), subject  # every town it was in, and no other
        seen_reasons |= {d.reason for d in effects[subject].decisions}
    # Registered there, but elsewhere on the contract's day: still rejected as not eligible.
    assert RejectionReason.NOT_ELIGIBLE in seen_reasons
    assert None in seen_reasons  # and verified ones


def test_a_portal_operator_acts_for_the_tenant_that_lists_it_else_for_its_own_institution() -> None:
    from services.frontdoor.portal.accounts import Accounts, PortalUser
    from services.frontdoor.portal.accounts import Role as PortalRole
    from services.frontdoor.portal.pages import Portal
    from shared.domain.institutions import InstitutionRegistry

    registry = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
    portal = Portal(Accounts.from_settings(None, registry, production=False), registry, tenancy=EXAMPLE)
    scope = portal.operator_scope
    # examples/tenants.yaml lists sonderborg-analyst as Sønderborg's portal user.
    assert scope(PortalUser("sonderborg-analyst", "exam-authority", PortalRole.OPERATOR)) == "sonderborg-kommune"
    assert scope(PortalUser("operator", "sonderborg-kommune", PortalRole.OPERATOR)) == "sonderborg-kommune"
    assert scope(PortalUser("clearing", "exam-authority", PortalRole.OPERATOR)) is None  # the clearing house's
    assert Portal(portal.accounts, registry).operator_scope(
        PortalUser("operator", "sonderborg-kommune", PortalRole.OPERATOR)) is None  # no tenants: every payer


def test_a_contract_can_pay_by_residence_from_the_cpr_registers_moves() -> None:
    """A child living in kommune-001 from 2012 but at school in kommune-000: the contract
    that pays by residence on the day is kommune-001's, even though the school is not."""
    from collections import defaultdict

    from cli.synthetic.nation import generate_nation
    from shared.domain.contracts.book import ContractBook
    from shared.domain.contracts.model import Contract
    from shared.domain.decisions import decide_all
    from shared.domain.events import EventType, Transition
    from shared.domain.institutions import Institution, InstitutionRegistry, may_report
    from tests.engine_replay import admitted, directory_of, event_line

    nation = generate_nation(2, 2, 1)
    registry = InstitutionRegistry((*nation.institutions,
                                    Institution(id="cpr-register", name="CPR register", kind="cpr_register")))
    assert may_report("cpr_register", EventType.RESIDENCE)
    assert not may_report("primary_school", EventType.RESIDENCE)

    def by_residence(town: str) -> Contract:
        base = next(c for c in nation.contracts if c.payer == town)
        return base.model_copy(update={"eligibility": base.eligibility.model_validate(
            {"resident_on": {"date": "2017-09-01", "municipality": town}})})

    cpr = "150904-4321"
    lines = [event_line("r-1", "2004-09-15", "cpr-register", cpr, {"type": "residence", "municipality": "kommune-000"}),
             event_line("d-in", "2005-08-01", "kommune-000-daycare-0", cpr,
                        {"type": "enrolled", "institution": "kommune-000-daycare-0", "stage": "daycare"}),
             event_line("d-out", "2010-07-31", "kommune-000-daycare-0", cpr,
                        {"type": "left", "institution": "kommune-000-daycare-0", "stage": "daycare"}),
             event_line("s-in", "2010-08-01", "kommune-000-primary-school-0", cpr,
                        {"type": "enrolled", "institution": "kommune-000-primary-school-0", "stage": "primary"}),
             event_line("r-2", "2012-01-01", "cpr-register", cpr, {"type": "residence", "municipality": "kommune-001"})]
    transitions = admitted(lines, registry)
    assert len(transitions) == len(lines)  # the register's moves are admitted facts
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    contracts = [by_residence("kommune-000"), by_residence("kommune-001")]
    effects = decide_all(ContractBook.of(contracts).in_force(), streams, dt.date(2026, 6, 30), directory_of(registry))
    paid = [(i.payer, i.payee) for e in effects.values() for i in e.instructions]
    assert paid == [("kommune-001", "kommune-000-daycare-0")]  # the municipality it lives in pays, across the border
    # A move refused from anyone but the CPR register: a school cannot say where a child lives.
    forged = event_line("r-3", "2016-01-01", "kommune-000-primary-school-0", cpr,
                        {"type": "residence", "municipality": "kommune-000"})
    assert admitted([forged], registry) == []
