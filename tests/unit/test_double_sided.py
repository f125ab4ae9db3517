"""Double-sided PbR: the target group from facts, the places and the intake, and the
programme's verdict per municipality and cluster on a hand-built cohort."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.loader import ContractFileError, load_contract, parse_contract
from shared.domain.contracts.target_group import benefit_periods, months_off_benefit
from shared.domain.contracts.timeline import fold
from shared.domain.decisions import decide_all
from shared.domain.events import CompanyGrowth, EventType, Transition
from shared.domain.institutions import may_report
from shared.domain.programmes.double_sided import (
    ClusterVerdict,
    IntakeReason,
    Programme,
    ProgrammeError,
    company_subject,
    verdict,
)
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import transition

EXAMPLES = REPO_ROOT / "examples" / "contracts"
# The example contracts, with 2 places in cluster 1 and 1 in cluster 2 instead of 9 + 9.
CONTRACTS = [parse_contract((EXAMPLES / "double-sided-pbr-citizens.yaml").read_text(encoding="utf-8")
                            .replace("cluster: cluster-1, places: 9", "cluster: cluster-1, places: 2")
                            .replace("cluster: cluster-2, places: 9", "cluster: cluster-2, places: 1")),
             load_contract(EXAMPLES / "double-sided-pbr-companies.yaml")]
PROGRAMME = Programme.model_validate({
    "programme_id": "double-sided-pbr", "currency": "DKK",
    "citizen_contract": "double-sided-pbr-citizens", "company_contract": "double-sided-pbr-companies",
    "clusters": [{"id": "cluster-1", "municipality": "sonderborg", "companies": ["alsvaerket"]},
                 {"id": "cluster-2", "municipality": "sonderborg", "companies": ["nordals-genbrug"]}],
    "monthly_benefit_minor": {"cash_benefit": 1_000_000, "integration_benefit": 500_000}})
runner = CliRunner()
DIRECTORY = {"jobvejen": InstitutionInfo("employment_actor", "sonderborg"),
             "alsvaerket": InstitutionInfo("social_enterprise", "sonderborg"),
             "nordals-genbrug": InstitutionInfo("social_enterprise", "sonderborg")}


def citizen(name: str) -> str:
    return "k1:" + hashlib.sha256(name.encode()).hexdigest()


class Cohort:
    def __init__(self) -> None:
        self.events: list[Transition] = []

    def add(self, who: str, on: str, by: str, kind: str, body: dict[str, Any],
            birth: dt.date = dt.date(1990, 5, 1)) -> None:
        self.events.append(transition(f"e{len(self.events) + 1}", on, by, kind, body, subject=who, birth=birth))

    def on_benefit(self, who: str, since: str, benefit: str) -> None:
        self.add(who, since, "benefit-register", "benefit_register",
                 {"type": "benefit_started", "benefit": benefit, "municipality": "sonderborg"})

    def referred(self, who: str, on: str, cluster: str) -> None:
        self.add(who, on, "sonderborg-kommune", "municipality",
                 {"type": "referral", "programme": "double-sided-pbr", "municipality": "sonderborg",
                  "cluster": cluster})

    def trained(self, who: str, stage: str, start: str, end: str) -> None:
        self.add(who, start, "jobvejen", "employment_actor", {"type": "enrolled", "institution": "jobvejen",
                                                              "stage": stage})
        self.add(who, end, "jobvejen", "employment_actor", {"type": "left", "institution": "jobvejen",
                                                            "stage": stage})

    def hired(self, who: str, on: str, benefit: str, *, subsidy: bool = False) -> None:
        day = dt.date.fromisoformat(on)
        self.add(who, (day - dt.timedelta(days=1)).isoformat(), "benefit-register", "benefit_register",
                 {"type": "benefit_ended", "benefit": benefit})
        self.add(who, on, "income-register", "income_register",
                 {"type": "employment_started", "employer": "ordinary-employer", "wage_subsidy": subsidy})

    def grew(self, company: str, cvr: str, employees: tuple[int, int], turnover: tuple[int, int]) -> None:
        body = {"type": "company_growth", "company": company, "period_start": "2024-02-01",
                "period_end": "2025-01-31", "employees_start": employees[0], "employees_end": employees[1],
                "employees_change": employees[1] - employees[0], "turnover_start_minor": turnover[0],
                "turnover_end_minor": turnover[1],
                "turnover_change_percent": 100 * (turnover[1] - turnover[0]) // turnover[0], "currency": "DKK"}
        self.add(company_subject(cvr), "2025-03-01", "business-register", "business_register", body,
                 birth=dt.date(2015, 3, 1))

    def judge(self, on: dt.date) -> tuple[Any, dict[str, ClusterVerdict]]:
        streams: dict[str, list[Transition]] = defaultdict(list)
        for event in self.events:
            streams[event.subject].append(event)
        effects = decide_all(ContractBook.of(CONTRACTS).in_force(), streams, on, DIRECTORY)
        timelines = {s: fold(s, stream[0].birth_date, stream) for s, stream in streams.items()}
        decided, clusters = verdict(PROGRAMME, CONTRACTS, timelines,
                                    (d for e in effects.values() for d in e.decisions), on)
        return decided, {c.cluster: c for c in clusters}


def hand_built() -> Cohort:
    """A: cash benefit, admitted to cluster 1, an ordinary job from 2025-03-01 (off
    benefit from March). B: integration benefit, admitted to cluster 1, no job. C: cash
    benefit, referred to cluster 1 after its 2 places went: over capacity, but hired.
    D: unemployment benefit: not in the target group. E: cash benefit, cluster 2's one
    place, a subsidised job from 2025-01-01. F: referred to a cluster that does not
    exist. A is referred a second time. Alsværket grew by 2 jobs (5 % turnover), Nordals
    Genbrug by 20 % turnover and no jobs."""
    cohort = Cohort()
    a, b, c, d, e, f = (citizen(name) for name in "ABCDEF")
    for who, benefit in ((a, "cash_benefit"), (b, "integration_benefit"), (c, "cash_benefit"),
                         (d, "unemployment_benefit"), (e, "cash_benefit"), (f, "cash_benefit")):
        cohort.on_benefit(who, "2023-01-01", benefit)
    cohort.referred(a, "2024-02-01", "cluster-1")
    cohort.referred(b, "2024-02-02", "cluster-1")
    cohort.referred(c, "2024-02-03", "cluster-1")
    cohort.referred(d, "2024-02-01", "cluster-2")
    cohort.referred(e, "2024-02-05", "cluster-2")
    cohort.referred(f, "2024-02-01", "cluster-9")
    cohort.referred(a, "2024-03-01", "cluster-2")
    cohort.trained(a, "labour_market_training", "2024-02-02", "2024-08-01")
    cohort.trained(a, "job_training", "2024-08-02", "2025-02-01")
    cohort.trained(b, "labour_market_training", "2024-02-03", "2024-05-01")  # dropped out
    cohort.hired(a, "2025-03-01", "cash_benefit")
    cohort.hired(c, "2025-03-01", "cash_benefit")
    cohort.hired(e, "2025-01-01", "cash_benefit", subsidy=True)
    cohort.grew("alsvaerket", "15856386", (5, 7), (1_000_000, 1_050_000))
    cohort.grew("nordals-genbrug", "11024785", (4, 4), (1_000_000, 1_200_000))
    return cohort


def test_the_intake_admits_referrals_in_order_and_records_each_refusal_with_its_reason() -> None:
    decided, _ = hand_built().judge(dt.date(2025, 12, 31))
    by_subject = {(x.subject, x.referred_on.isoformat()): (x.admitted, x.reason) for x in decided}
    assert by_subject == {
        (citizen("A"), "2024-02-01"): (True, None),
        (citizen("B"), "2024-02-02"): (True, None),
        (citizen("C"), "2024-02-03"): (False, IntakeReason.OVER_CAPACITY),
        (citizen("D"), "2024-02-01"): (False, IntakeReason.NOT_ON_ELIGIBLE_BENEFIT),
        (citizen("E"), "2024-02-05"): (True, None),
        (citizen("F"), "2024-02-01"): (False, IntakeReason.UNKNOWN_CLUSTER),
        (citizen("A"), "2024-03-01"): (False, IntakeReason.ALREADY_REFERRED),
    }


def test_the_verdict_per_cluster_sets_payments_against_the_months_off_benefit() -> None:
    _, clusters = hand_built().judge(dt.date(2025, 12, 31))
    one, two = clusters["cluster-1"], clusters["cluster-2"]
    # Cluster 1: A's ordinary job (15,000 + 35,000 once sustained 26 weeks) and
    # Alsværket's 2 new jobs (50,000); A off benefit March-December 2025: 10 months of
    # DKK 10,000. C found no place: its job is rejected over_capacity, nothing paid.
    assert (one.admitted, one.refused) == (2, {"over_capacity": 1})
    assert one.completed_track == 1  # A finished both halves; B left the first
    assert (one.citizens_in_ordinary_job, one.companies_grown) == (1, 1)
    assert (one.citizen_payments_minor, one.company_payments_minor) == (5_000_000, 5_000_000)
    assert one.paid_outside_places_minor == 0
    assert (one.months_off_benefit, one.savings_minor) == (10, 10_000_000)
    assert one.paid_off
    assert one.net_minor == 0
    assert (one.off_benefit_now, one.next_year_savings_minor) == (1, 12_000_000)
    assert one.self_financing
    # Cluster 2: E's job is subsidised (not paid; still off benefit all of 2025: 12
    # months), Nordals Genbrug grew 20 % in turnover (25,000).
    assert (two.admitted, two.refused) == (1, {"already_referred": 1, "not_on_eligible_benefit": 1})
    assert (two.citizens_in_ordinary_job, two.citizen_payments_minor) == (0, 0)
    assert (two.companies_grown, two.company_payments_minor) == (1, 2_500_000)
    assert (two.months_off_benefit, two.savings_minor, two.net_minor) == (12, 12_000_000, 9_500_000)
    assert two.paid_off
    assert two.self_financing


def test_earlier_the_same_cohort_has_not_paid_off_but_its_savings_can_finance_it_from_then_on() -> None:
    _, clusters = hand_built().judge(dt.date(2025, 9, 30))
    one = clusters["cluster-1"]
    assert one.payments_minor == 10_000_000  # A's sustained job counted on 2025-08-30
    assert (one.months_off_benefit, one.savings_minor) == (7, 7_000_000)  # March-September
    assert not one.paid_off
    assert one.self_financing  # 12 x 10,000 a year from A alone


def test_the_target_group_is_named_by_benefit_and_referral_and_a_citizen_without_a_place_is_not_paid() -> None:
    cohort = hand_built()
    cohort.hired(citizen("D"), "2025-03-01", "unemployment_benefit")  # referred, but not on cash benefit
    never_referred = citizen("H")
    cohort.on_benefit(never_referred, "2023-01-01", "cash_benefit")
    cohort.hired(never_referred, "2025-03-01", "cash_benefit")
    streams: dict[str, list[Transition]] = defaultdict(list)
    for event in cohort.events:
        streams[event.subject].append(event)
    effects = decide_all(ContractBook.of(CONTRACTS).in_force(), streams, dt.date(2025, 12, 31), DIRECTORY)
    for outsider in (citizen("D"), never_referred):
        decisions = effects[outsider].decisions
        assert decisions
        assert {d.reason.value if d.reason else None for d in decisions} == {"not_eligible"}
    over = effects[citizen("C")].decisions
    assert {(d.status.value, d.reason.value if d.reason else None) for d in over} == {("rejected", "over_capacity")}
    assert sum(d.owed_minor for d in over) == 0
    assert not effects[citizen("C")].instructions


def test_months_off_benefit_count_only_whole_calendar_months_with_no_benefit_day() -> None:
    cohort = Cohort()
    who = citizen("G")
    cohort.on_benefit(who, "2023-01-01", "cash_benefit")
    cohort.add(who, "2024-03-10", "benefit-register", "benefit_register",
               {"type": "benefit_ended", "benefit": "cash_benefit"})
    cohort.on_benefit(who, "2024-06-01", "cash_benefit")  # back on benefit in June
    periods = benefit_periods(fold(who, dt.date(1990, 5, 1), cohort.events))
    # After 2024-01-15: April and May are free; March has benefit days, June on benefit.
    assert months_off_benefit(periods, dt.date(2024, 1, 15), dt.date(2024, 12, 31)) == 2
    assert months_off_benefit(periods, dt.date(2024, 1, 15), dt.date(2024, 5, 30)) == 1  # May not over


def test_a_company_growth_fact_that_contradicts_itself_is_refused() -> None:
    good = {"type": "company_growth", "company": "alsvaerket", "period_start": "2024-02-01",
            "period_end": "2025-01-31", "employees_start": 5, "employees_end": 7, "employees_change": 2,
            "turnover_start_minor": 300, "turnover_end_minor": 401, "turnover_change_percent": 33,
            "currency": "DKK"}
    assert CompanyGrowth.model_validate(good).turnover_change_percent == 33
    for change in ({"employees_change": 3}, {"turnover_change_percent": 34},
                   {"period_end": "2024-01-01"}):
        with pytest.raises(ValidationError):
            CompanyGrowth.model_validate({**good, **change})
    from_zero = {**good, "turnover_start_minor": 0, "turnover_change_percent": None}
    assert CompanyGrowth.model_validate(from_zero).turnover_change_percent is None


def test_only_registers_report_benefits_and_growth_and_only_a_municipality_refers() -> None:
    assert may_report("benefit_register", EventType.BENEFIT_STARTED)
    assert not may_report("employment_actor", EventType.BENEFIT_ENDED)
    assert may_report("municipality", EventType.REFERRAL)
    assert not may_report("employment_actor", EventType.REFERRAL)
    assert may_report("business_register", EventType.COMPANY_GROWTH)
    assert not may_report("social_enterprise", EventType.COMPANY_GROWTH)


def test_a_programme_whose_citizen_contract_does_not_name_it_is_refused() -> None:
    other = PROGRAMME.model_copy(update={"programme_id": "another-programme"})
    with pytest.raises(ProgrammeError, match=r"eligibility\.referral must name programme another-programme"):
        verdict(other, CONTRACTS, {}, (), dt.date(2025, 1, 1))
    with pytest.raises(ProgrammeError, match="no contract double-sided-pbr-companies"):
        verdict(PROGRAMME, CONTRACTS[:1], {}, (), dt.date(2025, 1, 1))


def test_stafet_programme_records_the_over_capacity_referrals_and_prints_the_verdict(tmp_path: Path) -> None:
    events = tmp_path / "cohort.jsonl"
    generated = runner.invoke(app, ["programme", "generate", "--out", str(events), "--extra-referrals", "2"])
    assert generated.exit_code == 0, generated.output
    contracts = [arg for side in ("citizens", "companies")
                 for arg in ("--contract", str(REPO_ROOT / "examples" / "contracts" / f"double-sided-pbr-{side}.yaml"))]
    result = runner.invoke(app, ["programme", "verdict", "--events", str(events), *contracts, "--on", "2026-06-30"])
    assert result.exit_code == 0, result.output
    # 9 + 9 places, each cluster referred 2 over its places and 1 on another benefit.
    assert "24 referrals, 18 admitted" in result.output
    assert result.output.count(": over_capacity") == 4
    assert result.output.count(": not_on_eligible_benefit") == 2
    assert "sonderborg/cluster-1" in result.output
    assert "sonderborg/cluster-2" in result.output


def test_stafet_programme_refuses_bad_input_with_one_error_line(tmp_path: Path) -> None:
    events = tmp_path / "cohort.jsonl"
    assert runner.invoke(app, ["programme", "generate", "--out", str(events)]).exit_code == 0
    citizens = str(REPO_ROOT / "examples" / "contracts" / "double-sided-pbr-citizens.yaml")
    broken = tmp_path / "programme.yaml"
    broken.write_text("programme_id: x\ncurrency: DKK\nclusters: []\n")
    cases = [
        (["verdict", "--events", str(events), "--contract", citizens], "no contract double-sided-pbr-companies"),
        (["verdict", "--events", str(tmp_path / "none.jsonl"), "--contract", citizens,
          "--contract", str(REPO_ROOT / "examples" / "contracts" / "double-sided-pbr-companies.yaml")], "no such file"),
        (["verdict", "--events", str(events), "--contract", citizens, "--programme", str(broken)],
         "programme.yaml: citizen_contract: Field required"),
        (["generate", "--out", str(tmp_path / "x.jsonl"), "--programme", str(broken)], "programme.yaml"),
    ]
    for arguments, message in cases:
        result = runner.invoke(app, ["programme", *arguments])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: "), result.output
        assert message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_a_place_goes_by_the_day_of_the_referral_and_a_late_referral_never_displaces_a_final_one() -> None:
    from shared.domain.contracts.book import ContractBook as Book
    from tests.verifier_model import InMemoryVerifier

    cohort = hand_built()
    events = sorted(cohort.events, key=lambda e: e.occurred_on)
    b = citizen("B")
    late = [e for e in events if e.subject == b]  # B's referral (2024-02-02) arrives last
    end = [dt.date(2025, 12, 31)]  # the watermark passes the 26 weeks of sustainment
    # Everything in before the watermark: B was referred before C and takes the place.
    at_once = InMemoryVerifier(Book.of(CONTRACTS), DIRECTORY)
    at_once.batch(events, ticks=end)
    at_once.drain()
    assert ("double-sided-pbr-citizens", citizen("C"), "jobvejen") not in at_once.net_by_payee()
    assert {v[1] for k, v in at_once.statuses().items() if k.split("|")[2] == citizen("C")} == {"over_capacity"}
    # B's facts arrive after the watermark passed them: C's place was final and paid, and
    # stays so; B's claim is granted from what is left (nothing) and never claws C back.
    verifier = InMemoryVerifier(Book.of(CONTRACTS), DIRECTORY)
    verifier.batch([e for e in events if e.subject != b], ticks=end)
    verifier.drain()
    assert verifier.net_by_payee()[("double-sided-pbr-citizens", citizen("C"), "jobvejen")] == 5_000_000
    verifier.batch(late, ticks=[end[0] + dt.timedelta(days=1)])
    verifier.drain()
    assert verifier.net_by_payee()[("double-sided-pbr-citizens", citizen("C"), "jobvejen")] == 5_000_000
    assert not [i for i in verifier.published if i.kind == "clawback"]
    # B's place claim ranks on the day after the watermark it arrived under, behind C's.
    assert [c.occurred_on for c in verifier.claims.values() if c.subject == b] == [dt.date(2026, 1, 1)]


def test_places_must_name_each_cluster_once_and_do_not_mix_with_a_contract_wide_budget() -> None:
    text = (EXAMPLES / "double-sided-pbr-citizens.yaml").read_text(encoding="utf-8")
    with pytest.raises(ContractFileError, match="places cannot be combined with a total or per-period cap"):
        parse_contract(text.replace("  per_subject_minor: 5000000", "  per_subject_minor: 5000000\n  total_minor: 9000000"))
    with pytest.raises(ContractFileError, match="each municipality's cluster is listed once"):
        parse_contract(text.replace("cluster: cluster-2, places: 9", "cluster: cluster-1, places: 9"))


def test_months_off_benefit_stop_where_the_calendar_does() -> None:
    assert months_off_benefit((), dt.date(9998, 10, 15), dt.date(9999, 12, 31)) == 2  # Nov and Dec 9998
