"""Ingest's deduplication decisions (pure): repeats dropped and counted, an event id
reused with different content dead-lettered as a conflicting duplicate."""

from __future__ import annotations

from services.ingest.dedup import classify, content_hash
from tests.unit.builders import enrolled, left

FIRST = enrolled("e-1", "2010-08-01", "alsskolen")
SECOND = left("e-2", "2017-06-30", "alsskolen")
# The same event id as FIRST, with a different date: an institution's mistake.
FIRST_ALTERED = enrolled("e-1", "2010-08-02", "alsskolen")


def test_events_never_seen_are_forwarded_in_order() -> None:
    verdict = classify({}, [FIRST, SECOND])
    assert verdict.fresh == (FIRST, SECOND)
    assert (verdict.duplicates, verdict.conflicting) == (0, ())


def test_an_event_seen_before_with_the_same_content_is_dropped_and_counted() -> None:
    verdict = classify({"e-1": content_hash(FIRST)}, [FIRST, SECOND])
    assert verdict.fresh == (SECOND,)
    assert verdict.duplicates == 1
    assert verdict.conflicting == ()


def test_a_repeat_inside_one_batch_is_forwarded_once() -> None:
    verdict = classify({}, [FIRST, SECOND, FIRST, FIRST])
    assert verdict.fresh == (FIRST, SECOND)
    assert verdict.duplicates == 2


def test_an_event_id_seen_before_with_other_content_is_a_conflicting_duplicate() -> None:
    verdict = classify({"e-1": content_hash(FIRST)}, [FIRST_ALTERED, SECOND])
    assert verdict.conflicting == (FIRST_ALTERED,)
    assert verdict.fresh == (SECOND,)
    assert verdict.duplicates == 0


def test_an_event_id_reused_with_other_content_inside_one_batch_is_a_conflicting_duplicate() -> None:
    verdict = classify({}, [FIRST, FIRST_ALTERED])
    assert verdict.fresh == (FIRST,)
    assert verdict.conflicting == (FIRST_ALTERED,)


def test_the_content_hash_covers_every_field_of_a_transition() -> None:
    variants = [
        FIRST.model_copy(update={"occurred_on": SECOND.occurred_on}),
        FIRST.model_copy(update={"reported_by": "nordborg-skole"}),
        FIRST.model_copy(update={"reporter_kind": "daycare"}),
        FIRST.model_copy(update={"subject": "k1:" + "0" * 64}),
        FIRST.model_copy(update={"birth_date": SECOND.occurred_on}),
        FIRST.model_copy(update={"body": SECOND.body}),
    ]
    hashes = {content_hash(v) for v in variants}
    assert len(hashes) == len(variants)
    assert content_hash(FIRST) not in hashes


def test_seen_hashes_passed_in_are_not_changed() -> None:
    seen = {"e-9": "x"}
    classify(seen, [FIRST])
    assert seen == {"e-9": "x"}
