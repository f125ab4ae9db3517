"""An indicator contract decided by the live verifier and paid in the ledger: on the
event-time clock at its review date, then decided again when late facts change the
measured value (a late exam result: a top-up of the difference; a retraction: the earlier
payments clawed back and the new amount paid), the ledger's net always what the
independent oracle (tests/oracle.py) computes from the contract file and the events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from cli.synthetic.population import write_registry
from services.verifier.rebuild import compare, rebuild_verifier
from shared.domain.events import PaymentKind
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import OUTCOMES, PAYMENTS, TRANSITIONS, in_namespace
from tests import oracle
from tests.crash import run_until_fault
from tests.e2e.test_verifier import REGISTRY, publish_transitions, published_instructions
from tests.engine_replay import admitted, directory_of, event_line
from tests.kafka_helpers import publish_watermark, read_all, wait_settled
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
CONTRACT = REPO_ROOT / "examples" / "contracts" / "housing-area-indicator.yaml"
AREA_SCHOOL, OTHER_SCHOOL = "kommune-000-primary-school-0", "kommune-000-primary-school-1"
KINDS = {i.id: i.kind for i in REGISTRY.all()}
SETTLE_TIMEOUT_S = 180.0
REVIEWED = dt.date(2023, 4, 1)  # the day after the contract's review date
ONE_DAY = dt.timedelta(days=1)


def pupil(serial: int, school: str, exam_year: int, passed: bool) -> list[bytes]:
    """A pupil's enrolment and 9th-grade exam, as the school and the exam authority send them."""
    born = dt.date(exam_year - 16, 1 + serial % 12, 1 + serial % 28)
    cpr = f"{born:%d%m%y}-4{serial:03d}"
    grades = {"danish": 7.0, "maths": 4.0 if passed else 0.0}
    return [event_line(f"in-{serial}", f"{exam_year - 10}-08-10", school, cpr,
                       {"type": "enrolled", "institution": school}),
            event_line(f"exam-{serial}", f"{exam_year}-06-20", "exam-authority", cpr,
                       {"type": "exam_result", "exam": "fp9", "grades": grades})]


def cohort() -> list[bytes]:
    """Area 60 % -> 70 %, the rest of the municipality 70 % -> 70 %: ten points."""
    plan = [(AREA_SCHOOL, 2019, 6, 4), (AREA_SCHOOL, 2022, 7, 3),
            (OTHER_SCHOOL, 2019, 7, 3), (OTHER_SCHOOL, 2022, 7, 3)]
    lines, serial = [], 0
    for school, year, passed, failed in plan:
        for outcome in [True] * passed + [False] * failed:
            lines += pupil(serial, school, year, outcome)
            serial += 1
    return lines


def expected(lines: list[bytes]) -> dict[str, int]:
    return oracle.expected_balances([CONTRACT], lines, KINDS, today=REVIEWED)


async def test_an_indicator_contract_is_decided_at_its_review_date_and_re_decided_by_late_facts(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    env = {**service_env, "CONTRACT_FILES": str(CONTRACT), "INSTITUTIONS_FILE": str(registry)}
    services = [ServiceProcess("verifier", env, tmp_path / "verifier.log"),
                ServiceProcess("ledger", env, tmp_path / "ledger.log")]
    lines = cohort()
    late_pass = pupil(900, AREA_SCHOOL, 2022, True)
    # The exam authority withdraws two of the area's 2022 passes (reported in error).
    retractions = [event_line(f"retract-{n}", "2023-05-01", "exam-authority", cpr, {
        "type": "retraction", "retracts_event_id": f"exam-{n}"})
        for n, cpr in ((10, cpr_of(lines, "exam-10")), (11, cpr_of(lines, "exam-11")))]

    async def settle() -> dict[str, int]:
        await wait_settled(servers.bootstrap_servers, namespace, database_url, services, SETTLE_TIMEOUT_S,
                           stages=("verifier", "ledger"), watermark=False)
        state = await ledger_state(database_url)
        assert state["unbalanced"] == 0
        return state["balances"]  # type: ignore[return-value]

    for service in services:
        service.start()
    transitions = in_namespace(TRANSITIONS, namespace).name
    try:
        await publish_transitions(servers, namespace, admitted(lines, REGISTRY), watermark=REVIEWED - 2 * ONE_DAY)
        assert await settle() == {}, "paid before the review date"
        await publish_watermark(servers.bootstrap_servers, transitions, REVIEWED)
        first = await settle()
        assert first == expected(lines)
        assert sum(v for k, v in first.items() if k.startswith("receivable:")) > 0
        paid_before = {i.payment_id for i in await published_instructions(servers, namespace)}

        # A late exam result: a correction, decided when the next watermark brings it in.
        await publish_transitions(servers, namespace, admitted(late_pass, REGISTRY), watermark=REVIEWED + ONE_DAY)
        raised = await settle()
        assert raised == expected(lines + late_pass)
        top_ups = [i for i in await published_instructions(servers, namespace) if i.payment_id not in paid_before]
        assert top_ups, "a rise must move money"
        assert all(i.kind == PaymentKind.PAYMENT for i in top_ups), "a rise is a top-up"
        assert sum(i.amount_minor for i in top_ups) == _owed(raised) - _owed(first)

        await publish_transitions(servers, namespace, admitted(retractions, REGISTRY),
                                  watermark=REVIEWED + 2 * ONE_DAY)
        lowered = await settle()
    finally:
        for service in services:
            service.stop()
    assert lowered == expected(lines + late_pass + retractions)
    assert 0 < _owed(lowered) < _owed(raised)
    instructions = await published_instructions(servers, namespace)
    assert any(i.kind == PaymentKind.CLAWBACK for i in instructions), "a fall claws back"
    assert len({i.payment_id for i in instructions}) == len(instructions), "an instruction was published twice"
    outcomes = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                         in_namespace(OUTCOMES, namespace).name)]
    decided = [o for o in outcomes if o["outcome_id"] == "exam-improvement"]
    owed = [o["owed_minor"] for o in decided]
    # Decided once on the facts in by the review date, then once per correcting watermark.
    assert owed == [_owed(first), _owed(raised), _owed(lowered)]
    assert all(o["type"] == "OutcomeVerified" and o["subject"].startswith("pop:") for o in decided)
    # A rebuild replays the same log: the same steps, ids and amounts.
    await rebuild_verifier(database_url, servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                           directory_of(REGISTRY))
    result = await compare(database_url, servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                           in_namespace(OUTCOMES, namespace).name)
    assert result.same, result


async def test_the_verifier_killed_while_deciding_and_re_deciding_pays_each_amount_exactly_once(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    """Killed after publishing the decision and before deleting it from the outbox (the
    restart publishes it again: the same ids), then after committing a re-decision and
    before publishing it (the restart publishes it from the outbox)."""
    registry = tmp_path / "institutions.yaml"
    write_registry(registry, REGISTRY.all())
    env = {**service_env, "CONTRACT_FILES": str(CONTRACT), "INSTITUTIONS_FILE": str(registry)}
    verifier = ServiceProcess("verifier", env, tmp_path / "verifier.log")
    ledger = ServiceProcess("ledger", env, tmp_path / "ledger.log")
    lines, late_pass = cohort(), pupil(900, AREA_SCHOOL, 2022, True)
    transitions = in_namespace(TRANSITIONS, namespace).name

    async def run_clean() -> dict[str, int]:
        verifier.start()
        try:
            await wait_settled(servers.bootstrap_servers, namespace, database_url, [verifier, ledger],
                               SETTLE_TIMEOUT_S, stages=("verifier", "ledger"), watermark=False)
        finally:
            verifier.stop()
        return (await ledger_state(database_url))["balances"]  # type: ignore[return-value]

    ledger.start()
    try:
        await publish_transitions(servers, namespace, admitted(lines, REGISTRY), watermark=REVIEWED - 2 * ONE_DAY)
        assert await run_clean() == {}
        await publish_watermark(servers.bootstrap_servers, transitions, REVIEWED)
        await run_until_fault(verifier, "verifier.relay.after_publish:1", SETTLE_TIMEOUT_S)
        decided = await run_clean()
        await publish_transitions(servers, namespace, admitted(late_pass, REGISTRY), watermark=REVIEWED + ONE_DAY)
        await run_until_fault(verifier, "verifier.before_relay:1", SETTLE_TIMEOUT_S)
        raised = await run_clean()
    finally:
        ledger.stop()
    assert decided == expected(lines)
    assert raised == expected(lines + late_pass)
    assert 0 < _owed(decided) < _owed(raised)
    state = await ledger_state(database_url)
    entries = state["entry_ids"]
    assert isinstance(entries, list)
    assert len(entries) == len(set(entries)), "an entry was written twice"
    journal = await published_instructions(servers, namespace)
    assert len(journal) > len({i.payment_id for i in journal}), "the decision was republished after the crash"


def _owed(balances: dict[str, int]) -> int:
    return sum(v for k, v in balances.items() if k.startswith("receivable:"))


def cpr_of(lines: list[bytes], event_id: str) -> str:
    return next(str(json.loads(line)["subject"]["cpr"]) for line in lines if json.loads(line)["event_id"] == event_id)
