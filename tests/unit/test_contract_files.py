"""Contract and history files: good ones load, bad ones get one precise line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.domain.contracts.loader import ContractFileError, load_contract, parse_contract
from shared.platform.settings import REPO_ROOT

runner = CliRunner()
CONTRACTS = sorted((REPO_ROOT / "examples" / "contracts").glob("*.yaml"))


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.name)
def test_every_example_contract_is_valid(path: Path) -> None:
    contract = load_contract(path)
    assert contract.outcomes or contract.indicator_outcomes


def test_contract_check_accepts_the_examples() -> None:
    result = runner.invoke(app, ["contract", "check", *map(str, CONTRACTS)])
    assert result.exit_code == 0
    assert result.stdout.count("ok: ") == len(CONTRACTS)


def test_a_bad_field_is_named_with_its_line() -> None:
    text = (REPO_ROOT / "examples" / "contracts" / "sib-youth-education.yaml").read_text()
    broken = text.replace("amount_minor: 6000000", "amount_minor: -5")
    with pytest.raises(ContractFileError) as caught:
        parse_contract(broken, "sib.yaml")
    line = next(n for n, row in enumerate(broken.splitlines(), 1) if "amount_minor: -5" in row)
    assert f"sib.yaml:{line}: outcomes.0.price.amount_minor" in str(caught.value)


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ContractFileError, match=r"c.yaml:2: \(document\): not valid YAML"):
        parse_contract("contract_id: x\n  bad: [unclosed\n", "c.yaml")


def test_contract_check_on_a_malformed_file_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("contract_id: x\nversion: one\n")
    result = runner.invoke(app, ["contract", "check", str(bad)])
    assert result.exit_code == 2
    assert "version" in result.stderr
    assert "Traceback" not in result.output


def test_allocate_with_a_malformed_contract_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("just a string\n")
    history = REPO_ROOT / "examples" / "histories" / "mobility-worked-example-2.json"
    result = runner.invoke(app, ["allocate", "--contract", str(bad), "--history", str(history)])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ")


@pytest.mark.parametrize(("content", "fragment"), [
    ("{not json", "not valid JSON"),
    ('{"birth_date": "2004-13-01", "registrations": []}', "birth_date"),
    ('{"birth_date": "2004-01-01"}', "registrations"),
    ('{"birth_date": "2004-01-01", "registrations": [{"institution": "a", "start": "2010-01-01", "end": "2009-01-01"}]}',
     "ends 2009-01-01 before it starts"),
])
def test_allocate_with_a_malformed_history_gives_one_line_and_exit_2(
        tmp_path: Path, content: str, fragment: str) -> None:
    history = tmp_path / "history.json"
    history.write_text(content)
    contract = REPO_ROOT / "examples" / "contracts" / "mobility-bonus.yaml"
    result = runner.invoke(app, ["allocate", "--contract", str(contract), "--history", str(history),
                                 "--on", "2023-06-23"])
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_allocate_with_a_rate_contract_needs_the_amount() -> None:
    result = runner.invoke(app, [
        "allocate", "--contract", str(REPO_ROOT / "examples" / "contracts" / "fifa-solidarity.yaml"),
        "--history", str(REPO_ROOT / "examples" / "histories" / "fifa-worked-example-1.json")])
    assert result.exit_code == 2
    assert "--amount-minor" in result.stderr
