"""`make determinism`, short form (bench/determinism.py): a small recorded log of the demo's
municipality, replayed through the verifier's batch core on the real PostgreSQL in
batches of one and all at once, interleaved at random and reversed, by two replicas and
with a crash: the same instructions, and nothing clawed back without a correcting event.
A planted timing-dependent rule (a late claim ranked by its trigger date, as before issue
26) shows the check failing."""

from __future__ import annotations

import uuid

import pytest

from bench.determinism import RecordedLog, Variant, check, recorded_log, verdict
from shared.domain import decisions
from shared.domain.contracts.book import ContractBook
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SUBJECTS, SEED = 40, 7
SHORT = (Variant(1, "log order"), Variant(0, "log order"), Variant(7, "random"),
         Variant(7, "reversed", replicas=2), Variant(7, "log order", crash=True))
# The SIB's total cap made small enough to bind in a population this size: the last room
# goes to final claims, and late claims (known after the watermark passed them) get none.
SMALL_CAP_MINOR = 40_000_000


def binding_cap(log: RecordedLog) -> RecordedLog:
    book = ContractBook.of(c.model_copy(update={"caps": c.caps.model_copy(update={"total_minor": SMALL_CAP_MINOR})})
                           if c.contract_id == "sib-youth-education" else c for c in log.book.all())
    return RecordedLog(log.partitions, book, log.directory)


async def test_every_variant_of_reading_the_same_log_issues_the_same_instructions(servers: Servers) -> None:
    log = binding_cap(recorded_log(SUBJECTS, SEED))
    printed: list[str] = []
    rows = await check(servers.role_url("owner", "postgres"), log, SHORT, seed=3, out=printed.append,
                       databases=f"determinism_{uuid.uuid4().hex[:8]}")
    ok, said = verdict(rows)
    assert ok, "\n".join([*printed, said])
    assert said == "same instructions: yes; clawed back without a correcting event: 0.00"
    sib = [r for r in rows if r.contract == "sib-youth-education"]
    assert sib[0].instructed_minor == SMALL_CAP_MINOR, "the cap must bind, or this proves nothing about it"
    assert all(r.instructed_minor > 0 for r in rows if r.contract == "mobility-bonus")


async def test_a_planted_timing_dependent_grant_fails_the_check(servers: Servers,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Revert one rule: a late claim ranks by the day it counts, as if it had been known
    # in time, so it displaces grants that were final before it was known.
    monkeypatch.setattr(decisions, "_late_ranked", lambda contract, decided, requests, known: list(requests))
    log = binding_cap(recorded_log(SUBJECTS, SEED))
    rows = await check(servers.role_url("owner", "postgres"), log, SHORT[:3], seed=3, out=lambda _: None,
                       databases=f"determinism_{uuid.uuid4().hex[:8]}")
    ok, said = verdict(rows)
    assert not ok, said
