"""Payee master data in the institution registry: CVR, EAN, IBAN and payment method."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.domain.institutions import Institution, InstitutionRegistry, PaymentMethod, synthetic_payee_fields
from shared.platform.settings import REPO_ROOT

BASE = {"id": "skolen", "name": "Skolen", "kind": "primary_school"}


def test_a_bank_transfer_payee_keeps_its_iban_compact() -> None:
    payee = Institution(**BASE, cvr="19126188", iban="DK41 9999 1399 7870 85", payment_method="bank_transfer")
    assert payee.iban == "DK4199991399787085"
    assert payee.payment_method is PaymentMethod.BANK_TRANSFER


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("iban", "DK4199991399787086", "not a valid IBAN"),       # check digits off by one
    ("iban", "DK41999913997870", "not a valid IBAN"),         # too short for Denmark
    ("cvr", "19126189", "modulus 11"),
    ("ean", "5798793762651", "check digit"),
    ("bic", "NOTABIC!", "BIC"),
])
def test_a_wrong_number_is_refused_naming_the_check(field: str, value: str, problem: str) -> None:
    fields = {"cvr": "19126188", "iban": "DK4199991399787085", "payment_method": "bank_transfer", field: value}
    with pytest.raises(ValidationError, match=problem):
        Institution(**BASE, **fields)


def test_a_payment_method_needs_its_account() -> None:
    with pytest.raises(ValidationError, match="bank_transfer needs an iban"):
        Institution(**BASE, cvr="19126188", payment_method="bank_transfer")
    with pytest.raises(ValidationError, match="nemkonto needs a cvr"):
        Institution(**BASE, payment_method="nemkonto")
    with pytest.raises(ValidationError, match="iban needs a payment_method"):
        Institution(**BASE, iban="DK4199991399787085")


def test_every_paid_institution_in_the_example_registry_has_payee_data() -> None:
    registry = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
    reporters_only = {"exam_authority", "income_register", "education_register", "benefit_register",
                      "business_register"}
    for institution in registry.all():
        if institution.kind in reporters_only:
            assert institution.payment_method is None
        else:
            assert institution.payment_method is not None, institution.id
            assert institution.cvr is not None


def test_synthetic_payee_data_is_valid_and_deterministic(tmp_path: Path) -> None:
    ids = [f"kommune-{n:03d}-daycare-{k}" for n in range(30) for k in range(3)]
    for institution_id in ids:
        fields = synthetic_payee_fields(institution_id)
        assert fields == synthetic_payee_fields(institution_id)
        Institution(id=institution_id, name="x", kind="daycare", **fields)  # validates every check digit
    assert len({synthetic_payee_fields(i)["iban"] for i in ids}) == len(ids)
