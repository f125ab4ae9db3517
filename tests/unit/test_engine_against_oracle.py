"""The pure engine (ingest's admission, the verifier's decisions, the contract engine)
against the independent oracle (tests/oracle.py), with no servers: a bug in the domain
core shows here in a second, and again end to end (tests/e2e/test_pipeline.py,
test_verifier.py) where the ledger itself is compared with the oracle."""

from __future__ import annotations

import pytest

from cli.synthetic.population import generate, to_json_line
from shared.domain.contracts.loader import load_contract
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT
from tests import oracle
from tests.engine_replay import REGISTRY, admitted, directory_of, expected_balances, read_lines

CONTRACTS = REPO_ROOT / "examples" / "contracts"
SAMPLE = read_lines(REPO_ROOT / "examples" / "events" / "sample.jsonl")
COHORT_SUBJECTS, COHORT_SEED = 40, 5  # about a second of per-day oracle arithmetic
SUPPORTED = ("next-stage-bonus.yaml", "mobility-bonus.yaml", "sib-youth-education.yaml", "fifa-solidarity.yaml")


@pytest.mark.parametrize("contract", SUPPORTED[:2])
def test_the_sample_events_earn_what_the_oracle_says(contract: str) -> None:
    kinds = {i.id: i.kind for i in REGISTRY.all()}
    want = oracle.expected_balances([CONTRACTS / contract], SAMPLE, kinds)
    assert want, "the sample must earn money under this contract, or this test proves nothing"
    assert expected_balances([load_contract(CONTRACTS / contract)], admitted(SAMPLE)) == want


def test_a_synthetic_cohort_earns_what_the_oracle_says_under_every_contract_it_models() -> None:
    institutions, events = generate(COHORT_SUBJECTS, seed=COHORT_SEED, born_from=2000, born_to=2004)
    registry = InstitutionRegistry(institutions + REGISTRY.all())
    lines = [to_json_line(e) for e in events]
    kinds = {i.id: i.kind for i in registry.all()}
    files = [CONTRACTS / name for name in SUPPORTED[:3]]
    want = oracle.expected_balances(files, lines, kinds)
    assert len([k for k in want if k.startswith("receivable:")]) > 5
    assert expected_balances([load_contract(f) for f in files], admitted(lines, registry),
                             directory=directory_of(registry)) == want
