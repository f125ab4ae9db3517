"""What-if simulation: the same events under two variants of the mobility bonus."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from cli.reporting.data import net_by_kind, summarise
from cli.reporting.simulate import simulate, transitions_of
from cli.synthetic.population import generate, to_json_line, write_registry
from shared.domain.contracts.loader import load_contract
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

CONTRACTS = REPO_ROOT / "examples" / "contracts"


def test_weighting_the_early_years_moves_money_to_daycares_but_not_the_number_of_outcomes() -> None:
    institutions, events = generate(300, seed=9)
    registry = InstitutionRegistry(institutions)
    transitions, rejected = transitions_of((to_json_line(e) for e in events), registry)
    assert rejected == 0
    flat = simulate("flat", [load_contract(CONTRACTS / "mobility-bonus.yaml")], transitions, registry)
    early = simulate("early", [load_contract(CONTRACTS / "mobility-bonus-early-years.yaml")], transitions, registry)
    assert summarise(flat)[0].verified == summarise(early)[0].verified > 0
    assert net_by_kind(early)["daycare"]["DKK"] > net_by_kind(flat)["daycare"]["DKK"]
    assert net_by_kind(early)["youth_education"]["DKK"] < net_by_kind(flat)["youth_education"]["DKK"]


def test_stafet_simulate_prints_the_variants_side_by_side_and_writes_the_report(tmp_path: Path) -> None:
    runner = CliRunner()
    events, registry = tmp_path / "events.jsonl", tmp_path / "institutions.yaml"
    institutions, generated = generate(120, seed=4)
    events.write_bytes(b"".join(to_json_line(e) + b"\n" for e in generated))
    write_registry(registry, institutions)
    report = tmp_path / "report.html"
    result = runner.invoke(app, ["simulate", "--events", str(events), "--institutions", str(registry),
                                 "--contract", str(CONTRACTS / "mobility-bonus.yaml"),
                                 "--contract", str(CONTRACTS / "mobility-bonus-early-years.yaml"),
                                 "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "Social mobility bonus, youth education" in result.stdout
    assert "Social mobility bonus, early years weighted" in result.stdout
    assert "daycare" in result.stdout
    assert report.stat().st_size > 1_000_000
    assert "Variants side by side" in report.read_text()
