"""The verifier's cache of subjects' streams (services/verifier/streams.py): a stream is
given out only at exactly the version asked for, the cache holds a bounded number of
events, and a batch's own events are what reading them back from the store would give."""

from __future__ import annotations

import pytest

from cli.reporting.simulate import transitions_of
from cli.synthetic.population import generate, to_json_line
from services.verifier.streams import StreamCache
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from tests.unit.builders import enrolled, left

FIRST, SECOND, THIRD = (enrolled("e-1", "2010-08-01", "alsskolen"), left("e-2", "2017-06-30", "alsskolen"),
                        enrolled("e-3", "2017-08-01", "byskolen"))


def test_a_stream_is_given_out_only_at_the_version_it_was_cached_at() -> None:
    cache = StreamCache()
    cache.put("s", 2, (FIRST, SECOND))
    assert cache.get("s", 2) == (FIRST, SECOND)
    # Another writer appended (version 3) or the caller's view is older (version 1).
    assert cache.get("s", 3) is None
    assert cache.get("s", 1) is None
    assert cache.get("t", 2) is None
    assert cache.hits == 1


def test_a_newer_version_replaces_the_older_one() -> None:
    cache = StreamCache()
    cache.put("s", 2, (FIRST, SECOND))
    cache.put("s", 3, (FIRST, SECOND, THIRD))
    assert (cache.get("s", 2), cache.get("s", 3), cache.events) == (None, (FIRST, SECOND, THIRD), 3)


def test_the_cache_holds_at_most_its_events_and_drops_the_least_recently_used() -> None:
    cache = StreamCache(events_max=4)
    cache.put("a", 2, (FIRST, SECOND))
    cache.put("b", 1, (FIRST,))
    assert cache.get("a", 2) is not None  # now "b" is the least recently used
    cache.put("c", 2, (SECOND, THIRD))
    assert cache.events <= 4
    assert (cache.get("a", 2), cache.get("b", 1), cache.get("c", 2)) == ((FIRST, SECOND), None, (SECOND, THIRD))
    cache.put("d", 5, (FIRST,) * 5)  # larger than the whole cache: not kept
    assert cache.get("d", 5) is None
    assert cache.events <= 4


def test_a_stream_whose_length_is_not_its_version_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be version"):
        StreamCache().put("s", 3, (FIRST, SECOND))


def test_a_transition_read_back_from_its_stored_json_equals_the_one_the_batch_holds() -> None:
    # A batch evaluates its own new events as objects instead of reading them back from
    # the store: the two must be the same facts, for every kind of event the synthetic
    # population has.
    institutions, events = generate(60, seed=3, municipalities=2)
    transitions, _ = transitions_of((to_json_line(e) for e in events), InstitutionRegistry(institutions))
    assert {t.body.type for t in transitions} >= {"enrolled", "left", "exam_result", "education_completed"}
    for transition in transitions:
        assert Transition.model_validate_json(transition.model_dump_json()) == transition


def test_a_batch_remembers_only_streams_whose_length_is_their_version() -> None:
    cache = StreamCache()
    cache.remember({"s": 2, "t": 3, "u": 1}, {"s": (FIRST, SECOND), "t": (FIRST,)})
    assert (cache.get("s", 2), cache.get("t", 3), cache.get("u", 1)) == ((FIRST, SECOND), None, None)
