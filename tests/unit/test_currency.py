"""Money with its currency: no silent conversion, ISO 4217 minor units, exact formatting,
and what-if tables that label currencies and never add different ones."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from cli.main import app
from cli.reporting.page import money
from cli.synthetic.population import generate, to_json_line, write_registry
from shared.domain.contracts.evaluation import OutcomeStatus, RejectionReason, evaluate_subject
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.timeline import fold
from shared.domain.currency import format_minor, format_money
from shared.domain.events import Transfer
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import BIRTH, SUBJECT, enrolled, left, transition

runner = CliRunner()
CONTRACTS = REPO_ROOT / "examples" / "contracts"


def transfer(event_id: str, on: str, amount_minor: int, currency: str):  # type: ignore[no-untyped-def]
    return transition(event_id, on, "club-b", "club",
                      {"type": "transfer", "from_institution": "club-b", "to_institution": "club-c",
                       "compensation_minor": amount_minor, "currency": currency})


def test_a_transfer_in_sek_under_a_eur_contract_is_rejected_not_paid_in_eur() -> None:
    fifa = load_contract(CONTRACTS / "fifa-solidarity.yaml")
    events = [enrolled("e1", "2016-01-01", "club-a", "club"), left("e2", "2020-12-31", "club-a", "club"),
              transfer("t1", "2021-06-01", 100_000_000, "SEK")]
    decision = evaluate_subject(fifa, fold(SUBJECT, BIRTH, events), dt.date(2021, 12, 31))[0]
    assert decision.status == OutcomeStatus.REJECTED
    assert decision.reason == RejectionReason.CURRENCY_MISMATCH
    assert decision.owed_minor == 0


def test_the_same_transfer_in_eur_is_paid() -> None:
    fifa = load_contract(CONTRACTS / "fifa-solidarity.yaml")
    events = [enrolled("e1", "2016-01-01", "club-a", "club"), left("e2", "2020-12-31", "club-a", "club"),
              transfer("t1", "2021-06-01", 100_000_000, "EUR")]
    assert evaluate_subject(fifa, fold(SUBJECT, BIRTH, events), dt.date(2021, 12, 31))[0].status == \
        OutcomeStatus.VERIFIED


def test_an_event_with_an_unknown_currency_code_is_refused() -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        Transfer(from_institution="a", to_institution="b", compensation_minor=1, currency="XYZ")


@pytest.mark.parametrize(("amount", "currency", "shown"), [
    (123456, "DKK", "1,234.56 DKK"), (123456, "JPY", "123,456 JPY"), (123456, "BHD", "123.456 BHD"),
    (-5, "DKK", "-0.05 DKK"), (10**17 + 1, "DKK", "1,000,000,000,000,000.01 DKK"),
    (10**28 + 7, "EUR", "100,000,000,000,000,000,000,000,000.07 EUR"),
])
def test_money_is_shown_exactly_with_its_iso_4217_minor_unit(amount: int, currency: str, shown: str) -> None:
    assert format_money(amount, currency) == shown
    assert money(amount, currency) == shown


def test_csv_amounts_use_the_currency_exponent_without_grouping() -> None:
    assert format_minor(123456, "JPY", grouping=False) == "123456"
    assert format_minor(-1234567, "BHD", grouping=False) == "-1234.567"


def test_contract_show_prints_prices_in_the_contract_currency_exactly(tmp_path: Path) -> None:
    text = (CONTRACTS / "sib-youth-education.yaml").read_text().replace("currency: DKK", "currency: JPY")
    path = tmp_path / "sib-jpy.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["contract", "show", str(path)])
    assert result.exit_code == 0
    assert "price 6,000,000 JPY" in result.stdout
    assert "cap in total: 240,000,000 JPY" in result.stdout


def test_allocate_rounds_a_rate_pot_of_10_to_the_28_down_exactly() -> None:
    history = REPO_ROOT / "examples" / "histories" / "fifa-worked-example-1.json"
    amount = 10**29 + 19  # 5 % is 5 * 10**27 + 0.95: the payer keeps the 0.95
    result = runner.invoke(app, ["allocate", "--contract", str(CONTRACTS / "fifa-solidarity.yaml"),
                                 "--history", str(history), "--amount-minor", str(amount), "--on", "2024-01-10"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pot_minor"] == 5 * 10**27


def test_simulate_labels_each_currency_and_never_adds_two_currencies(tmp_path: Path) -> None:
    events, registry = tmp_path / "events.jsonl", tmp_path / "institutions.yaml"
    institutions, generated = generate(120, seed=4)
    events.write_bytes(b"".join(to_json_line(e) + b"\n" for e in generated))
    write_registry(registry, institutions)
    variants = []
    for currency in ("DKK", "SEK", "JPY"):
        path = tmp_path / f"mobility-{currency}.yaml"
        path.write_text((CONTRACTS / "mobility-bonus.yaml").read_text()
                        .replace("currency: DKK", f"currency: {currency}")
                        .replace("title: Social mobility bonus", f"title: Bonus {currency}"))
        variants += ["--contract", str(path)]
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["simulate", "--events", str(events), "--institutions", str(registry),
                                 *variants, "--report", str(report)])
    assert result.exit_code == 0, result.output
    # The comparison table's row of each variant (the business case below repeats the titles).
    rows: dict[str, str] = {}
    for line in result.stdout.splitlines():
        for currency in ("DKK", "SEK", "JPY"):
            if line.startswith(f"Bonus {currency},"):
                rows.setdefault(currency, line)
    assert set(rows) == {"DKK", "SEK", "JPY"}
    assert " JPY" in rows["JPY"]
    assert " DKK" not in rows["JPY"]
    assert ".00 JPY" not in rows["JPY"]  # no decimals for a currency without a minor unit
    assert " SEK" in rows["SEK"]
    # Savings are estimated in DKK: only the DKK variant is netted against them.
    assert "not comparable" in rows["JPY"]
    assert "not comparable" in rows["SEK"]
    html = report.read_text()
    assert "JPY" in html
    assert "SEK" in html
