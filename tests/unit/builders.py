"""Builders for unit tests: transitions and contracts in a line each."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from shared.domain.contracts.loader import parse_contract
from shared.domain.contracts.model import Contract
from shared.domain.events import Transition

SUBJECT = "k1:" + hashlib.sha256(b"subject").hexdigest()
BIRTH = dt.date(2004, 9, 15)


def transition(event_id: str, on: str, by: str, kind: str, body: dict[str, Any],
               subject: str = SUBJECT, birth: dt.date = BIRTH) -> Transition:
    return Transition.model_validate({
        "event_id": event_id, "occurred_on": on, "reported_by": by, "reporter_kind": kind,
        "subject": subject, "birth_date": birth.isoformat(), "body": body})


def enrolled(event_id: str, on: str, institution: str, kind: str = "primary_school") -> Transition:
    return transition(event_id, on, institution, kind,
                      {"type": "enrolled", "institution": institution})


def left(event_id: str, on: str, institution: str, kind: str = "primary_school") -> Transition:
    return transition(event_id, on, institution, kind, {"type": "left", "institution": institution})


def contract(yaml_text: str) -> Contract:
    return parse_contract(yaml_text, "<test>")


HEADER = """
contract_id: test
version: 1
payer: payer
currency: DKK
period: {start: 2000-01-01, end: 2099-12-31}
"""
