"""The main job: a small demo on the real servers, checked against the pure engine."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from cli.demo import (
    CONTRACT_FILES,
    DEMO_WATERMARK,
    EXCLUSION_MODEL,
    demo_pipeline,
    demo_population,
    per_subject_and_by_population,
    print_summary,
)
from cli.experiment import DEMO_EFFECT_POINTS
from cli.reporting.data import summarise
from cli.reporting.skandia import load_exclusion_model, measured_deadweights
from cli.synthetic.population import to_json_line
from shared.domain.contracts.loader import load_contract
from shared.domain.institutions import InstitutionRegistry
from tests import oracle
from tests.engine_replay import admitted, directory_of, expected_balances
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SUBJECTS, SEED = 300, 3


async def test_a_small_demo_pays_exactly_what_the_pure_engine_computes_and_writes_a_report(
        servers: Servers, namespace: str, database_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    result = await demo_pipeline(servers.bootstrap_servers, database_url, namespace, tmp_path,
                                 subjects=SUBJECTS, seed=SEED, paid_share=0.7, failed_share=0.0, show=False)
    institutions, events = demo_population(SUBJECTS, SEED)
    registry = InstitutionRegistry(institutions)
    lines = [to_json_line(e) for e in events]
    per_subject, by_population = per_subject_and_by_population()
    # Decided as of the demo's watermark: what it made final is paid, the rest provisional.
    expected = expected_balances([load_contract(p) for p in per_subject], admitted(lines, registry),
                                 today=DEMO_WATERMARK, directory=directory_of(registry))
    # The housing-area contract pays for the area's change, decided over the population:
    # the independent oracle computes it from the contract file and the same events.
    assert [load_contract(p).contract_id for p in by_population] == ["housing-area-exam-indicator"]
    for account, amount in oracle.expected_balances(by_population, lines,
                                                    {i.id: i.kind for i in institutions}).items():
        expected[account] = expected.get(account, 0) + amount
    expected = {k: v for k, v in expected.items() if v}
    state = await ledger_state(database_url)
    balances: dict[str, int] = state["balances"]  # type: ignore[assignment]
    # Settlement moves money from pending to paid; what each payee is owed in all stays.
    owed: dict[str, int] = {}
    investment = {k: v for k, v in balances.items() if k.split(":")[0] in ("investor", "provider")}
    for account, amount in balances.items():
        if account in investment:
            continue  # the SIB investor's commitment and tranches: checked below
        kind, owner, _ = account.split(":")
        key = account if kind == "budget" else f"{kind}:{owner}:pending"
        owed[key] = owed.get(key, 0) + amount
    assert {k: v for k, v in owed.items() if v} == expected
    assert state["unbalanced"] == 0
    assert result.settled > 0
    summaries = {s.contract_id: s for s in summarise(result.data)}
    assert set(summaries) == {load_contract(p).contract_id for p in CONTRACT_FILES}
    assert all(summaries[load_contract(p).contract_id].verified > 0 for p in per_subject)
    # The area's change is decided once, after its review date: paid, or rejected with a
    # reason (300 children leave the area's school a few pupils a year, and the change
    # may be under the floor).
    housing = summaries["housing-area-exam-indicator"]
    assert housing.verified + housing.rejected == 1, housing
    assert housing.clawed_back_minor == 0  # applied after the facts: decided once, never re-decided
    assert summaries["sib-youth-education"].paid_minor <= 240_000_000  # principal plus at most 20 %
    # Money moves once: every fact was in before the watermark, so nothing is clawed back,
    # and what the watermark has not made final yet is shown as provisional.
    assert result.states is not None
    assert all(state.clawed_back_minor == 0 for state in result.states.values()), result.states
    assert all(s.clawed_back_minor == 0 for s in summaries.values())
    # The investor's position: its two tranches, and the SIB's outcome payments settled to it.
    assert result.investors is not None
    sib = result.investors.of("nordic-impact-investor", "sib-youth-education")
    assert sib is not None
    assert (sib.committed_minor, sib.disbursed_minor) == (200_000_000, 200_000_000)
    assert sib.repaid_minor == balances.get("receivable:nordic-impact-investor:paid", 0)
    assert investment["investor:nordic-impact-investor:sib-youth-education:capital"] == -200_000_000
    assert result.report.stat().st_size > 1_000_000  # the charting library is embedded
    # Did it work: the indicators counted from the live store, and the experiment's
    # estimate, whose measured deadweight the business case uses.
    assert result.evidence is not None
    assert {m.indicator_id for m in result.evidence.measurements} == {
        "unlawful-absence", "exam-danish-maths", "education-beyond-primary", "neither-job-nor-education"}
    (trial,) = result.evidence.experiments
    (exam,) = trial.estimates
    assert exam.low_points <= DEMO_EFFECT_POINTS <= exam.high_points
    measured = measured_deadweights(load_exclusion_model(EXCLUSION_MODEL), result.evidence.estimates(), result.data)
    assert list(measured) == ["exam-passed"]
    page = result.report.read_text()
    assert "Did it work? Indicators against their baselines" in page
    assert f"[{exam.low_points:+.2f}, {exam.high_points:+.2f}]" in page
    assert f"exam-passed {float(measured['exam-passed'].value):.0%} measured" in page
    # The summary as `stafet demo` prints it into a pipe: no escape sequence, every
    # contract's title and every institution's name whole (issue 30).
    capsys.readouterr()
    print_summary(result, 5)
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    assert all(s.title in printed for s in summarise(result.data))
    assert "Housing area, 9th-grade exam (Danish and maths), paid per point of improvement" in printed
    # The portal served the demo's data: the busiest institution's development user logged
    # in and saw as many statement lines as the ledger holds payments for it.
    assert result.portal is not None
    connection = await asyncpg.connect(database_url)
    try:
        payments = await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE payee = $1 AND payee_role = 'institution'"
            " AND kind IN ('payment', 'clawback')", result.portal.institution)
    finally:
        await connection.close()
    assert result.portal.lines == payments > 0
    assert f"portal: {result.portal.address}" in printed
    assert f"{result.portal.institution} logged in (password {result.portal.password})" in printed
