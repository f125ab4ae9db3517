"""Ingest's dedup store against real PostgreSQL: what was remembered is recognised after
a restart (a new connection), duplicates by content, conflicts by content hash."""

from __future__ import annotations

import asyncpg
import pytest

from services.ingest.dedup import Forwardable, remember, sort_out
from tests.unit.builders import enrolled, left, transition

pytestmark = pytest.mark.e2e


async def test_remembered_events_are_duplicates_after_a_restart_and_changed_ones_conflicts(
        pool: asyncpg.Pool) -> None:
    first = Forwardable.of(enrolled("e-1", "2010-08-01", "alsskolen"))
    second = Forwardable.of(left("e-2", "2017-06-30", "alsskolen"))
    async with pool.acquire() as connection:
        verdict, misfits = await sort_out(connection, [first, second])
        assert verdict.fresh == (first, second)
        assert misfits == ()
        await remember(connection, verdict.fresh)
        await remember(connection, verdict.fresh)  # remembering twice (a replayed batch) is harmless
    async with pool.acquire() as connection:
        altered = Forwardable.of(enrolled("e-1", "2010-08-02", "alsskolen"))
        third = Forwardable.of(enrolled("e-3", "2017-08-15", "nordborg-skole"))
        verdict, _ = await sort_out(connection, [first, altered, third])
        # Another school's retraction of e-1 by its id: the store knows whose e-1 it is.
        attack = Forwardable.of(transition("x-1", "2018-01-01", "nordborg-skole", "primary_school",
                                           {"type": "retraction", "retracts_event_id": "e-1"}))
        own = Forwardable.of(transition("x-2", "2018-01-01", "alsskolen", "primary_school",
                                        {"type": "retraction", "retracts_event_id": "e-1"}))
        corrections, misfits = await sort_out(connection, [attack, own])
    assert verdict.fresh == (third,)
    assert verdict.duplicates == 1
    assert verdict.conflicting == (altered,)
    assert corrections.fresh == (own,)
    assert [(m.item, m.reason) for m in misfits] == [(attack, "not_original_reporter")]
