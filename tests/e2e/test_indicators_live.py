"""Indicators counted from the live verifier's event store in PostgreSQL: the same
numbers as the same facts counted in memory, read page by page."""

from __future__ import annotations

import asyncio
import csv
import hashlib
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.reporting.live_indicators import live_timelines
from services.verifier import store
from shared.domain.events import Transition
from shared.domain.indicators.compute import measure
from shared.domain.indicators.feed import timelines_from_transitions
from shared.domain.indicators.loader import load_indicators
from shared.platform.settings import REPO_ROOT
from tests.unit.builders import transition

pytestmark = pytest.mark.e2e
EXAM = load_indicators(REPO_ROOT / "examples" / "indicators" / "sonderborg.yaml").by_id("exam-danish-maths")
GRADES = [(7.0, 7.0), (2.0, 4.0), (0.0, 12.0), (10.0, 10.0), (12.0, 2.0), (4.0, 4.0), (7.0, -3.0), (2.0, 2.0)]


def exams() -> list[Transition]:
    return [transition(f"x-{n}", "2019-06-20", "exam-authority", "exam_authority",
                       {"type": "exam_result", "exam": "fp9", "grades": {"danish": danish, "maths": maths}},
                       subject="k1:" + hashlib.sha256(f"pupil-{n}".encode()).hexdigest())
            for n, (danish, maths) in enumerate(GRADES)]


async def test_the_live_store_gives_the_same_measurement_as_the_facts_in_memory(
        pool: asyncpg.Pool, database_url: str) -> None:
    assert EXAM is not None
    events = exams()
    async with pool.acquire() as connection:
        await store.append_events(connection, events)
    live = await live_timelines(database_url, page=3)  # three pages and a bit
    assert len(live) == len(GRADES)
    from_store = measure(EXAM, live, 2019, minimum_cell=1)
    in_memory = measure(EXAM, timelines_from_transitions(events), 2019, minimum_cell=1)
    assert from_store == in_memory
    assert (from_store.numerator, from_store.denominator) == (6, 8)


def test_the_measure_command_and_the_export_read_the_store_and_suppress_small_cells(
        database_url: str, tmp_path: Path) -> None:
    async def append() -> None:
        connection = await asyncpg.connect(database_url)
        try:
            await store.append_events(connection, exams())
        finally:
            await connection.close()

    asyncio.run(append())  # the command runs its own event loop, so this test has none
    result = CliRunner().invoke(app, ["indicators", "measure", "--year", "2019"], env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
    exam_rows = [line for line in result.output.splitlines() if line.startswith("exam-danish-maths")]
    # 6 of 8 passed: the two who did not are a cell under 5, so nothing is shown.
    assert len(exam_rows) == 2
    municipality, area = exam_rows
    assert "suppressed (too_few_outside_numerator)" in municipality
    assert "no subjects" in area  # none of them went to the area's school
    assert "6/8" not in result.output
    # The export for publication: the same rows, suppressed and marked the same way.
    out = tmp_path / "indicators.csv"
    exported = CliRunner().invoke(app, ["export", "indicators", "--year", "2019", "--out", str(out)],
                                  env={"DATABASE_URL": database_url})
    assert exported.exit_code == 0, exported.output
    rows = {(r["indicator_id"], r["scope"]): r for r in csv.DictReader(out.open())}
    assert len(rows) == 8
    municipality_row = rows[("exam-danish-maths", "municipality")]
    assert municipality_row["suppressed"] == "too_few_outside_numerator"
    assert (municipality_row["numerator"], municipality_row["denominator"]) == ("", "")
    # The setting moves the line for every output: at 2, the 2 who did not pass are shown.
    shown = CliRunner().invoke(app, ["export", "indicators", "--year", "2019", "--out", str(out), "--yes"],
                               env={"DATABASE_URL": database_url, "MINIMUM_CELL": "2"})
    assert shown.exit_code == 0, shown.output
    rows = {(r["indicator_id"], r["scope"]): r for r in csv.DictReader(out.open())}
    assert (rows[("exam-danish-maths", "municipality")]["numerator"],
            rows[("exam-danish-maths", "municipality")]["denominator"]) == ("6", "8")
