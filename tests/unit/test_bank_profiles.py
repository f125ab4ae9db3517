"""Each bank profile's pain.001: valid against the ISO 20022 XSD and true to the profile's
rules (debtor BIC, initiating party, payment type, batch booking, charge bearer, NemKonto
form, a Danish banking day), and the Danish banking-day calendar itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from shared.domain.finance.iso20022 import PAIN_001, XSD_DIR, Iso20022Error, initiator_for, pain001
from shared.domain.finance.payouts import LeftOut, Payable, PayoutFormat, plan_payout
from shared.domain.finance.profiles import (
    BankProfile,
    ProfileError,
    banking_day_on_or_after,
    is_banking_day,
    load_profiles,
    profile_named,
    shipped_profiles,
)
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
NS = {"p": PAIN_001}
NOW = dt.datetime(2024, 12, 20, 9, 0, tzinfo=dt.UTC)
PAYER = "sonderborg-kommune"


def pid(n: int) -> str:
    return f"{n:032x}"


# Two payments to one school (one transfer), one to a NemKonto payee (alsvaerket).
PAYABLES = [Payable(pid(1), "mobility-bonus", "school_ready", PAYER, "nordborg-skole", 10_000, "DKK", dt.date(2024, 2, 1)),
            Payable(pid(2), "mobility-bonus", "exam", PAYER, "nordborg-skole", 2_550, "DKK", dt.date(2024, 2, 2)),
            Payable(pid(3), "employment-pbr", "job", PAYER, "alsvaerket", 77_700, "DKK", dt.date(2024, 2, 3))]


def test_the_three_danish_banks_have_profiles() -> None:
    assert set(shipped_profiles()) == {"danske-bank", "nordea", "jyske-bank"}
    with pytest.raises(ProfileError, match="no bank profile 'sparekassen'"):
        profile_named("sparekassen")


@pytest.mark.parametrize("name", sorted(shipped_profiles()))
def test_each_profile_writes_a_valid_pain001_that_follows_its_rules(name: str) -> None:
    profile = shipped_profiles()[name]
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001, profile=profile)
    assert plan.left_out == ()  # the NemKonto payee goes in the pain.001 in the profile's form
    execution = banking_day_on_or_after(dt.date(2024, 12, 24))  # Christmas Eve: banks are closed
    party = initiator_for(profile, "Sønderborg Kommune", REGISTRY.get(PAYER).cvr, "AGR-778899")
    document = pain001(plan.lines, plan.run_id, NOW, execution, party, profile)
    root = etree.fromstring(document)
    schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "pain.001.001.03.xsd")))
    assert schema.validate(root), schema.error_log

    header = root.find("p:CstmrCdtTrfInitn/p:GrpHdr", NS)
    assert header is not None
    expected_id = "AGR-778899" if profile.initiating_party == "agreement" else REGISTRY.get(PAYER).cvr
    assert header.findtext("p:InitgPty/p:Id/p:OrgId/p:Othr/p:Id", namespaces=NS) == expected_id
    assert header.findtext("p:InitgPty/p:Id/p:OrgId/p:Othr/p:SchmeNm/p:Cd", namespaces=NS) == \
        profile.initiating_party_scheme
    assert header.findtext("p:NbOfTxs", namespaces=NS) == "2"  # one transfer per payee
    blocks = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert len(blocks) == 2  # transfers to an IBAN, and NemKonto transfers
    for block in blocks:
        assert block.findtext("p:DbtrAgt/p:FinInstnId/p:BIC", namespaces=NS) == profile.bic
        assert block.findtext("p:BtchBookg", namespaces=NS) == ("true" if profile.batch_booking else "false")
        assert block.findtext("p:ChrgBr", namespaces=NS) == profile.charge_bearer
        assert block.findtext("p:PmtTpInf/p:SvcLvl/p:Cd", namespaces=NS) == profile.service_level
        assert block.findtext("p:PmtTpInf/p:CtgyPurp/p:Cd", namespaces=NS) == profile.category_purpose
        day = dt.date.fromisoformat(str(block.findtext("p:ReqdExctnDt", namespaces=NS)))
        assert day == dt.date(2024, 12, 27)
        assert is_banking_day(day)
    school = blocks[0].find("p:CdtTrfTxInf", NS)
    assert school is not None
    assert school.findtext("p:Amt/p:InstdAmt", namespaces=NS) == "125.50"
    assert [x.text for x in school.iterfind("p:RmtInf/p:Strd/p:RfrdDocInf/p:Nb", NS)] == [pid(1), pid(2)]
    assert school.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == REGISTRY.get("nordborg-skole").iban
    assert len(str(school.findtext("p:PmtId/p:EndToEndId", namespaces=NS))) <= 35
    nemkonto = blocks[1].find("p:CdtTrfTxInf", NS)
    assert nemkonto is not None
    assert profile.nemkonto is not None
    assert blocks[1].findtext("p:PmtTpInf/p:LclInstrm/p:Prtry", namespaces=NS) == profile.nemkonto.local_instrument
    assert nemkonto.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", namespaces=NS) == REGISTRY.get("alsvaerket").cvr
    assert nemkonto.findtext("p:CdtrAcct/p:Id/p:Othr/p:SchmeNm/p:Prtry", namespaces=NS) == \
        profile.nemkonto.account_scheme
    assert nemkonto.find("p:CdtrAcct/p:Id/p:IBAN", NS) is None
    for name_element in root.iterfind(".//p:Nm", NS):
        assert len(str(name_element.text)) <= profile.name_max_length


def test_an_agreement_profile_needs_the_agreement_id_and_a_profile_without_nemkonto_leaves_those_payees_out(
        ) -> None:
    with pytest.raises(Iso20022Error, match="agreement id"):
        initiator_for(profile_named("danske-bank"), "x", "16931918", None)
    without = BankProfile.model_validate({**profile_named("nordea").model_dump(), "nemkonto": None})
    plan = plan_payout(PAYABLES, REGISTRY, {}, PayoutFormat.PAIN_001, profile=without)
    assert plan.left_out == ((pid(3), LeftOut.PAYEE_NOT_BANK_TRANSFER),)


def test_a_profiles_file_with_a_bad_bic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "banks.yaml"
    path.write_text("profiles:\n  x: {name: X, bic: DABADK, initiating_party: cvr, initiating_party_scheme: CUST,"
                    " service_level: NURG, category_purpose: SUPP, batch_booking: true, charge_bearer: SHAR}\n")
    with pytest.raises(ProfileError, match="bic"):
        load_profiles(path)


@pytest.mark.parametrize(("day", "banking"), [
    ("2024-12-23", True), ("2024-12-24", False), ("2024-12-25", False), ("2024-12-31", False),
    ("2024-06-05", False),  # Constitution Day: banks closed, not a public holiday
    ("2024-05-09", False), ("2024-05-10", False),  # Ascension Day and the Friday after it
    ("2024-05-01", True),   # 1 May is a banking day
    ("2024-03-28", False), ("2024-04-01", False), ("2024-03-30", False),  # Easter, a Saturday
    ("2023-05-05", False), ("2024-04-26", True),  # Great Prayer Day, abolished from 2024
])
def test_danish_banking_days(day: str, banking: bool) -> None:
    assert is_banking_day(dt.date.fromisoformat(day)) is banking


def test_the_execution_date_moves_to_the_next_banking_day() -> None:
    assert banking_day_on_or_after(dt.date(2024, 12, 24)) == dt.date(2024, 12, 27)
    assert banking_day_on_or_after(dt.date(2024, 3, 28)) == dt.date(2024, 4, 2)
    assert banking_day_on_or_after(dt.date(2024, 3, 4)) == dt.date(2024, 3, 4)
