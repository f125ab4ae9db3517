"""`stafet contract check --registry` (and `contract apply`, and the verifier on apply)
refuses contracts that would pay wrongly or never (issue 30): a payer, payee or fallback
the registry does not know or of the wrong kind, two versions taking effect on one day,
windows no subject can fall into, a deadline before the version takes effect. And a
trigger inside the period but before the first version takes effect is rejected
`before_contract_start` instead of getting no decision at all. Each problem is one line:
`file:line: field: reason_code: text`."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.checks import VERIFIER_REFUSES, ContractProblem, issues_of
from shared.domain.contracts.loader import parse_contract
from shared.domain.events import OutcomeStatus
from shared.platform.settings import REPO_ROOT
from tests.unit.test_versions import completed, verifier

runner = CliRunner()
REGISTRY = REPO_ROOT / "examples" / "institutions.yaml"
KINDS = {"sonderborg-kommune": "municipality", "alsskolen": "primary_school", "exam-authority": "exam_authority",
         "nordic-impact-investor": "investor"}


def contract_text(version: int = 1, payee: str = "alsskolen", payer: str = "sonderborg-kommune",
                  extra: str = "", trigger: str = "{event: education_completed}", outcome_extra: str = "") -> str:
    return f"""contract_id: bonus
version: {version}
payer: {payer}
currency: DKK
period: {{start: 2020-01-01, end: 2030-12-31}}
{extra}
outcomes:
  - id: completed
    trigger: {trigger}
{outcome_extra}    price: {{kind: fixed, amount_minor: 100000}}
    distribution: {{kind: direct, payee: {{role: institution, institution: {payee}}}}}
"""


def check(tmp_path: Path, *texts: str, registry: Path | None = REGISTRY) -> tuple[int, list[str], str]:
    paths = []
    for n, text in enumerate(texts):
        path = tmp_path / f"c{n}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    options = ["--registry", str(registry)] if registry else []
    result = runner.invoke(app, ["contract", "check", *options, *paths])
    assert "Traceback" not in result.output
    return result.exit_code, [line.replace(str(tmp_path) + "/", "") for line in result.stderr.splitlines()], \
        result.stdout


def line_of(text: str, fragment: str) -> int:
    return next(n for n, row in enumerate(text.splitlines(), 1) if fragment in row)


def test_a_payee_not_in_the_registry_is_refused_at_its_line(tmp_path: Path) -> None:
    text = contract_text(payee="ghost-provider-ltd")
    code, errors, _ = check(tmp_path, text)
    assert code == 2
    assert errors == [f"c0.yaml:{line_of(text, 'ghost-provider-ltd')}: outcomes.0.distribution.payee.institution: "
                      "unknown_payee: payee 'ghost-provider-ltd' is not in the institution registry"]


def test_a_payer_or_fallback_not_in_the_registry_and_an_evidence_source_paid_are_refused(tmp_path: Path) -> None:
    text = contract_text(payer="nobody-kommune", payee="exam-authority", extra="fallback_account: nowhere-fund")
    code, errors, _ = check(tmp_path, text)
    assert code == 2
    codes = [line.split(": ")[2] for line in errors]
    assert codes == ["unknown_payer", "unknown_fallback", "wrong_kind"]
    assert all(line.count("\n") == 0 for line in errors)


def test_the_examples_pass_against_the_registries_they_are_written_for(tmp_path: Path) -> None:
    examples = REPO_ROOT / "examples" / "contracts"
    for name in ("mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml", "next-stage-bonus.yaml",
                 "double-sided-pbr-citizens.yaml"):
        result = runner.invoke(app, ["contract", "check", "--registry", str(REGISTRY), str(examples / name)])
        assert result.exit_code == 0, result.stderr


def test_two_versions_taking_effect_on_one_day_are_refused_when_checked_together(tmp_path: Path) -> None:
    v1 = contract_text(1, extra="effective_from: 2024-01-01")
    v2 = contract_text(2, extra="effective_from: 2024-01-01")
    code, errors, _ = check(tmp_path, v1, v2)
    assert code == 2
    assert [line.split(": ")[2] for line in errors] == ["same_effective_from", "same_effective_from"]
    assert "v1 would never be in force" in errors[0]
    # Apart, each is fine; with different days, both are.
    assert check(tmp_path, v1)[0] == 0
    assert check(tmp_path, v1, contract_text(2, extra="effective_from: 2025-01-01"))[0] == 0


@pytest.mark.parametrize(("trigger", "outcome_extra", "extra", "reason"), [
    ("{event: education_completed, age_at_least: 30, age_below: 20}", "", "", "empty_age_range"),
    ("{event: education_completed, age_at_least: 18, age_below: 18}", "", "", "empty_age_range"),
    ("{event: education_completed, age_below: 0}", "", "", "empty_age_range"),
    ("{event: education_completed}", "    deadline: 2022-06-30\n", "effective_from: 2023-01-01",
     "deadline_before_effective_from"),
    ("{event: education_completed, age_below: 10}", "", "eligibility: {birth_year_to: 2005}", "impossible_window"),
    ("{event: education_completed, age_at_least: 40}", "", "eligibility: {birth_year_from: 2000}",
     "impossible_window"),
], ids=["at-least-30-below-20", "at-least-18-below-18", "below-0", "deadline-before-effective-from",
        "born-by-2005-below-10-after-2020", "born-from-2000-40-by-2030"])
def test_windows_no_subject_can_fall_into_are_refused_without_a_registry(
        tmp_path: Path, trigger: str, outcome_extra: str, extra: str, reason: str) -> None:
    code, errors, _ = check(tmp_path, contract_text(trigger=trigger, outcome_extra=outcome_extra, extra=extra),
                            registry=None)
    assert code == 2
    assert [line.split(": ")[2] for line in errors] == [reason]


def test_the_verifier_refuses_what_would_pay_wrongly_and_leaves_the_payer_to_the_operator() -> None:
    ghost = parse_contract(contract_text(payee="ghost-provider-ltd", payer="not-registered"))
    found = {issue.code for issue in issues_of(ghost, [], KINDS) if issue.code in VERIFIER_REFUSES}
    # A payee with no account is refused on apply; an unknown payer is `contract check`'s
    # and `contract apply`'s to refuse (a synthetic registry may leave its payer out).
    assert found == {ContractProblem.UNKNOWN_PAYEE}
    v1 = parse_contract(contract_text(1, extra="effective_from: 2024-01-01"))
    v2 = parse_contract(contract_text(2, extra="effective_from: 2024-01-01"))
    assert [i.code for i in issues_of(v2, [v1], KINDS)] == [ContractProblem.SAME_EFFECTIVE_FROM]
    assert issues_of(v1, [v1], KINDS) == []  # a version arriving again is not its own twin


def test_contract_apply_refuses_a_ghost_payee_before_it_publishes_anything(tmp_path: Path) -> None:
    path = tmp_path / "ghost.yaml"
    path.write_text(contract_text(payee="ghost-provider-ltd"), encoding="utf-8")
    stafet = str(Path(sys.executable).parent / "stafet")
    done = subprocess.run([stafet, "contract", "apply", str(path)], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"},
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert "unknown_payee" in done.stderr
    assert "nothing applied" in done.stderr
    assert "cannot reach" not in done.stderr


def test_a_trigger_before_the_first_version_takes_effect_is_rejected_before_contract_start() -> None:
    late_start = parse_contract(contract_text(payee="fund", extra="effective_from: 2024-01-01"))
    live = verifier(late_start)
    live.batch([completed(1, "2023-05-01"), completed(2, "2024-05-01")], [dt.date(2025, 1, 1)])  # a watermark
    live.drain()
    statuses = sorted(status for status, _, _ in live.statuses().values())
    reasons = sorted(str(reason) for _, reason, _ in live.statuses().values())
    assert statuses == sorted([OutcomeStatus.REJECTED.value, OutcomeStatus.VERIFIED.value])
    assert "before_contract_start" in reasons
