"""`stafet audit` takes the contract versions the verifier takes (cli/audit.py,
`_signed_contracts`): a version the verifier refuses for its checks (a payee the registry
does not know) or for its payer (a configured contract file's id under another payer) is
refused by the audit too, or the audit recomputes money the verifier never decided."""

from __future__ import annotations

from typing import Any

import pytest

import services.verifier.rebuild as rebuild
from cli.audit import _signed_contracts
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import Contract, contract_record_key
from shared.domain.institutions import InstitutionRegistry
from shared.domain.signing import RecordSigner
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.trust import trusted_keys
from tests.unit.test_signing import consumed

CONTRACTS = REPO_ROOT / "examples" / "contracts"
KINDS = {i.id: i.kind for i in InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml").all()}


def _record(contract: Contract, signer: str, topic: str = "ns.contracts.v1") -> Any:
    key = contract_record_key(contract, signer)
    return consumed(topic, key, contract.model_dump_json().encode(), RecordSigner.development(signer))


def _on_the_topics(monkeypatch: pytest.MonkeyPatch, records: list[Any]) -> None:
    async def read_in_broker_order(bootstrap: str, topics: Any, principal: str = "verifier") -> list[Any]:
        return records

    monkeypatch.setattr(rebuild, "read_in_broker_order", read_in_broker_order)


async def test_a_version_the_verifier_refuses_for_an_unknown_payee_is_refused_by_the_audit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TENANTS_FILE", raising=False)
    good = load_contract(CONTRACTS / "next-stage-bonus.yaml")
    sib = load_contract(CONTRACTS / "sib-youth-education.yaml")
    unknown = Contract.model_validate_json(sib.model_dump_json().replace("nordic-impact-investor", "no-such-payee"))
    _on_the_topics(monkeypatch, [_record(good, "operator:dev"), _record(unknown, "operator:dev")])
    contracts, refused = await _signed_contracts("x", ("ns.contracts.v1",), trusted_keys(Settings()), (), KINDS)
    assert contracts == [good]
    assert refused == 1


async def test_a_configured_files_contract_id_keeps_its_payer_in_the_audit_as_in_the_verifier(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tenants = REPO_ROOT / "examples" / "tenants.yaml"
    monkeypatch.setenv("TENANTS_FILE", str(tenants))
    configured = load_contract(CONTRACTS / "next-stage-bonus.yaml")  # sonderborg-kommune's, a CONTRACT_FILES entry
    assert configured.payer == "sonderborg-kommune"
    other = Contract.model_validate({**configured.model_dump(mode="json"), "payer": "aabenraa-kommune"})
    _on_the_topics(monkeypatch, [_record(other, "operator:aabenraa-ops", "ns.contracts.aabenraa-kommune.v1")])
    contracts, refused = await _signed_contracts("x", ("ns.contracts.v1",), trusted_keys(Settings(tenants_file=tenants)),
                                                 [configured], KINDS)
    assert contracts == [configured]
    assert refused == 1
