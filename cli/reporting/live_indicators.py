"""The live feed: every subject's stream from the verifier's event store, folded as the
verifier folds it, read in bounded pages so memory follows the page, not the store."""

from __future__ import annotations

import asyncpg

from services.verifier.store import load_streams
from shared.domain.contracts.timeline import SubjectTimeline
from shared.domain.indicators.feed import timelines_from_streams

SUBJECTS_PER_PAGE = 2_000


async def live_timelines(database_url: str, page: int = SUBJECTS_PER_PAGE) -> list[SubjectTimeline]:
    connection = await asyncpg.connect(database_url)
    try:
        timelines: list[SubjectTimeline] = []
        after = ""
        while True:
            rows = await connection.fetch(
                "SELECT subject FROM verifier_subjects WHERE subject > $1 ORDER BY subject LIMIT $2", after, page)
            if not rows:
                return timelines
            subjects = [r["subject"] for r in rows]
            timelines.extend(timelines_from_streams(await load_streams(connection, subjects)))
            after = subjects[-1]
    finally:
        await connection.close()
