"""A poison pill on a live verifier: a subject whose pot the arithmetic cannot allocate
(registered at 13 institutions at once) arrives between two good subjects. The good ones
are paid, the poison one is recorded as rejected with a reason code, and the partition
moves on (the consumer catches up)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.domain.events import PaymentKind, Transition
from shared.platform.topics import OUTCOMES, in_namespace
from tests.e2e.test_verifier import (
    REGISTRY,
    published_instructions,
    verify_all,
)
from tests.e2e.test_verifier import verifier_env as verifier_env  # the fixture, used by name
from tests.engine_replay import admitted, event_line
from tests.kafka_helpers import read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
GOOD = ("150904-4321", "020303-4999")
POISON = "010105-4345"


def chain(cpr: str, prefix: str) -> list[bytes]:
    return [
        event_line(f"{prefix}-1", "2010-08-01", "alsskolen", cpr, {"type": "enrolled", "institution": "alsskolen"}),
        event_line(f"{prefix}-2", "2020-06-26", "alsskolen", cpr, {"type": "left", "institution": "alsskolen"}),
        event_line(f"{prefix}-3", "2020-06-20", "exam-authority", cpr,
                   {"type": "exam_result", "grades": {"danish": 7.0, "maths": 7.0}}),
    ]


def thirteen_at_once(cpr: str) -> list[bytes]:
    schools = [i.id for i in REGISTRY.all() if i.kind in ("primary_school", "daycare")][:13]
    assert len(schools) == 13
    stays = [event_line(f"p-{n}", "2010-08-01", school, cpr, {"type": "enrolled", "institution": school})
             for n, school in enumerate(schools)]
    return [*stays, event_line("p-exam", "2020-06-20", "exam-authority", cpr,
                               {"type": "exam_result", "grades": {"danish": 7.0, "maths": 7.0}})]


async def test_a_subject_the_arithmetic_cannot_allocate_is_rejected_and_the_good_ones_around_it_are_paid(
        servers: Servers, namespace: str, database_url: str, verifier_env: dict[str, str],
        tmp_path: Path) -> None:
    first = admitted(chain(GOOD[0], "a"), REGISTRY)
    poison = admitted(thirteen_at_once(POISON), REGISTRY)
    last = admitted(chain(GOOD[1], "b"), REGISTRY)
    assert (len(first), len(poison), len(last)) == (3, 14, 3)
    transitions: list[Transition] = [*first, *poison, *last]
    # verify_all waits until the consumer has no lag and no work is left: a stalled
    # partition fails it with "the verifier did not catch up".
    await verify_all(servers, namespace, database_url, verifier_env, tmp_path / "verifier.log", transitions)
    paid = {i.subject for i in await published_instructions(servers, namespace) if i.kind == PaymentKind.PAYMENT}
    assert {first[0].subject, last[0].subject} <= paid
    assert poison[0].subject not in paid
    outcomes = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                         in_namespace(OUTCOMES, namespace).name)]
    assert any(o["subject"] == poison[0].subject and o["reason"] == "allocation_impossible" for o in outcomes)
