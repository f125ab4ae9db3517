"""Ingest's deduplication decisions (pure): repeats dropped and counted, an event id
reused with different content dead-lettered as a conflicting duplicate."""

from __future__ import annotations

import hashlib

from services.ingest.dedup import Forwardable, classify, content_hash
from tests.unit.builders import enrolled, left

FIRST = Forwardable.of(enrolled("e-1", "2010-08-01", "alsskolen"))
SECOND = Forwardable.of(left("e-2", "2017-06-30", "alsskolen"))
# The same event id as FIRST, with a different date: an institution's mistake.
FIRST_ALTERED = Forwardable.of(enrolled("e-1", "2010-08-02", "alsskolen"))


def test_events_never_seen_are_forwarded_in_order() -> None:
    verdict = classify({}, [FIRST, SECOND])
    assert verdict.fresh == (FIRST, SECOND)
    assert (verdict.duplicates, verdict.conflicting) == (0, ())


def test_an_event_seen_before_with_the_same_content_is_dropped_and_counted() -> None:
    verdict = classify({("alsskolen", "e-1"): FIRST.digest}, [FIRST, SECOND])
    assert verdict.fresh == (SECOND,)
    assert verdict.duplicates == 1
    assert verdict.conflicting == ()


def test_a_repeat_inside_one_batch_is_forwarded_once() -> None:
    verdict = classify({}, [FIRST, SECOND, FIRST, FIRST])
    assert verdict.fresh == (FIRST, SECOND)
    assert verdict.duplicates == 2


def test_an_event_id_seen_before_with_other_content_is_a_conflicting_duplicate() -> None:
    verdict = classify({("alsskolen", "e-1"): FIRST.digest}, [FIRST_ALTERED, SECOND])
    assert verdict.conflicting == (FIRST_ALTERED,)
    assert verdict.fresh == (SECOND,)
    assert verdict.duplicates == 0


def test_an_event_id_reused_with_other_content_inside_one_batch_is_a_conflicting_duplicate() -> None:
    verdict = classify({}, [FIRST, FIRST_ALTERED])
    assert verdict.fresh == (FIRST,)
    assert verdict.conflicting == (FIRST_ALTERED,)


def test_the_content_hash_covers_every_field_of_a_transition() -> None:
    first, second = FIRST.transition, SECOND.transition
    variants = [
        first.model_copy(update={"occurred_on": second.occurred_on}),
        first.model_copy(update={"reported_by": "nordborg-skole"}),
        first.model_copy(update={"reporter_kind": "daycare"}),
        first.model_copy(update={"subject": "k1:" + "0" * 64}),
        first.model_copy(update={"birth_date": second.occurred_on}),
        first.model_copy(update={"body": second.body}),
    ]
    hashes = {content_hash(v) for v in variants}
    assert len(hashes) == len(variants)
    assert FIRST.digest not in hashes


def test_the_content_hash_is_the_hash_of_the_bytes_forwarded() -> None:
    assert FIRST.digest == hashlib.sha256(FIRST.transition.model_dump_json().encode()).hexdigest()
    assert FIRST.value == FIRST.transition.model_dump_json().encode()


def test_seen_hashes_passed_in_are_not_changed() -> None:
    seen = {"e-9": "x"}
    classify(seen, [FIRST])
    assert seen == {"e-9": "x"}


# Another institution's event under the same id, and the same id with another subject.
SQUATTED = Forwardable.of(enrolled("e-1", "2010-08-01", "nordborg-skole"))
OTHER_CHILD = Forwardable.of(FIRST.transition.model_copy(update={"subject": "k1:" + "0" * 64}))


def test_an_event_id_belongs_to_its_reporter_so_another_institution_cannot_take_it() -> None:
    squatter_first = classify({("nordborg-skole", "e-1"): SQUATTED.digest}, [FIRST])
    assert squatter_first.fresh == (FIRST,)
    assert squatter_first.conflicting == ()
    same_batch = classify({}, [SQUATTED, FIRST])
    assert same_batch.fresh == (SQUATTED, FIRST)


def test_the_same_id_with_another_subject_is_a_conflicting_duplicate_never_a_duplicate() -> None:
    verdict = classify({("alsskolen", "e-1"): FIRST.digest}, [OTHER_CHILD])
    assert verdict.conflicting == (OTHER_CHILD,)
    assert verdict.duplicates == 0


def test_a_row_from_before_ids_were_per_reporter_absorbs_only_the_very_same_event() -> None:
    legacy = {("", "e-1"): FIRST.digest}
    assert classify(legacy, [FIRST]).duplicates == 1
    assert classify(legacy, [SQUATTED]).fresh == (SQUATTED,)
