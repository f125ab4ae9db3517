"""`stafet contract check` is the engine's gate: whatever the engine or simulate would
trip on is refused as `file:line: field: problem`, exit 2, never a traceback; YAML is
parsed safely within limits on size, depth and alias expansion."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.loader import ContractFileError, parse_contract
from shared.platform.settings import REPO_ROOT

runner = CliRunner()
EXAMPLES = REPO_ROOT / "examples" / "contracts"
MOBILITY = (EXAMPLES / "mobility-bonus.yaml").read_text(encoding="utf-8")
SIB = (EXAMPLES / "sib-youth-education.yaml").read_text(encoding="utf-8")
MEMORY_MAX_BYTES = 100 * 2**20


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "contract.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["contract", "check", str(path)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stderr.replace(str(path), "contract.yaml")


def line_of(text: str, fragment: str) -> int:
    return next(n for n, row in enumerate(text.splitlines(), 1) if fragment in row)


@pytest.mark.parametrize(("old", "new", "at", "field", "problem"), [
    ('{kind: school, starts: "08-01"}', '{kind: school, starts: "02-30"}', '"02-30"',
     "outcomes.1.distribution.year_basis", "not a day every year has"),
    ('{kind: school, starts: "08-01"}', '{kind: school, starts: "02-29"}', '"02-29"',
     "outcomes.1.distribution.year_basis", "not a day every year has"),
    ('{"0-19": "0.05"}', '{"0-18": "0.05", "980-999": "0.0025"}', "980-999",
     "outcomes.0.distribution.weights", "outside a life"),
    ("currency: DKK", "currency: XYZ", "currency: XYZ", "currency", "not an ISO 4217 currency code"),
    ("period: {start: 2020-01-01, end: 2035-12-31}",
     "period: {start: 2020-01-01, end: 2035-12-31}\neffective_from: 2036-01-01", "effective_from:",
     "effective_from", "outside the period"),
    ("    price: {kind: fixed, amount_minor: 4000000}",
     "    deadline: 2019-12-31\n    price: {kind: fixed, amount_minor: 4000000}", "deadline:",
     "outcomes.0.deadline", "outside the period"),
    ("  - id: exam-passed\n", "  - id: exam-passed\n    prerequisites: [exam-passed]\n", "prerequisites:",
     "outcomes.1.prerequisites", "cycle"),
    ("period: {start: 2020-01-01", "period: {start: 2020-02-30", "period:", "(document)",
     "'2020-02-30' is not a date"),
], ids=["02-30", "02-29", "ages-980-999", "XYZ", "effective-after-period", "deadline-before-period",
        "prerequisite-cycle", "impossible-date"])
def test_check_refuses_what_the_engine_would_trip_on_at_its_line(
        tmp_path: Path, old: str, new: str, at: str, field: str, problem: str) -> None:
    assert old in MOBILITY
    text = MOBILITY.replace(old, new, 1)
    code, errors = check(tmp_path, text)
    assert code == 2
    assert f"contract.yaml:{line_of(text, at)}: {field}: " in errors
    assert problem in errors


def test_a_prerequisite_cycle_through_two_outcomes_is_named() -> None:
    text = MOBILITY.replace("  - id: exam-passed\n", "  - id: exam-passed\n    prerequisites: [youth-education-completed]\n") \
        .replace("  - id: youth-education-completed\n",
                 "  - id: youth-education-completed\n    prerequisites: [exam-passed]\n")
    with pytest.raises(ContractFileError, match="youth-education-completed -> exam-passed -> youth-education-completed"):
        parse_contract(text, "c.yaml")


def test_duplicate_keys_are_refused_each_at_its_line(tmp_path: Path) -> None:
    text = SIB.replace("currency: DKK", "currency: DKK\npayer: someone-else\ncurrency: EUR")
    code, errors = check(tmp_path, text)
    assert code == 2
    assert f"contract.yaml:{line_of(text, 'payer: someone-else')}: payer: duplicate key 'payer'" in errors
    assert f"contract.yaml:{line_of(text, 'currency: EUR')}: currency: duplicate key 'currency'" in errors


ALIAS_BOMB = "\n".join(
    [f'{chr(97)}: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(97 + n)}: &{chr(97 + n)} [{','.join([f'*{chr(96 + n)}'] * 9)}]" for n in range(1, 9)]) + "\n"
DEEP = "x: " + "[" * 50_000 + "]" * 50_000 + "\n"


@pytest.mark.parametrize(("text", "problem"), [
    (ALIAS_BOMB, "aliases expand to more than"),
    (DEEP, "nested deeper than"),
    ("a: " + "x" * 1_100_000, "larger than"),
], ids=["alias-bomb", "50000-deep", "oversized"])
def test_hostile_yaml_is_refused_within_100_mb_without_a_traceback(tmp_path: Path, text: str, problem: str) -> None:
    assert len(ALIAS_BOMB) < 360  # expands to 9**9 strings
    tracemalloc.start()
    try:
        with pytest.raises(ContractFileError, match=problem):
            parse_contract(text, "c.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_MAX_BYTES
    code, errors = check(tmp_path, text)
    assert code == 2
    assert problem in errors


def test_an_unsafe_yaml_tag_is_refused() -> None:
    with pytest.raises(ContractFileError, match="not valid YAML"):
        parse_contract("contract_id: !!python/object/apply:os.system ['true']\n", "c.yaml")
