"""The ledger's /metrics says how many payout runs finance exported and when the last
one was (the Grafana dashboard's "payout runs"), read as the ledger's own runtime role,
which may see those two columns of the runs and nothing else of them."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from services.ledger.metrics import refresh_payout_runs
from shared.platform import metrics
from tests.servers import Servers

pytestmark = pytest.mark.e2e


def at(year: int, month: int, day: int, second: int = 0) -> datetime:
    return datetime(year, month, day, 8, 0, second, tzinfo=UTC)


async def test_payout_runs_are_counted_by_format_with_the_time_of_the_last(
        servers: Servers, database_url: str) -> None:
    name = database_url.rsplit("/", 1)[-1]
    ledger = await asyncpg.connect(servers.role_url("ledger", name))
    owner = await asyncpg.connect(database_url)
    try:
        await refresh_payout_runs(ledger)
        assert metrics.REGISTRY.get_sample_value("stafet_payout_last_run_timestamp_seconds") == 0.0
        assert metrics.REGISTRY.get_sample_value("stafet_payout_runs", {"format": "csv"}) is None
        await owner.executemany(
            "INSERT INTO payout_exports (export_id, format, date_from, date_to, execution_date, created_at)"
            " VALUES ($1, $2, '2024-02-01', '2024-02-29', '2024-03-01', $3)",
            [("STAFET-1", "pain.001", at(2024, 3, 1)), ("STAFET-2", "csv", at(2024, 3, 2)),
             ("STAFET-3", "csv", at(2024, 4, 1, second=30))])
        await refresh_payout_runs(ledger)
        assert metrics.REGISTRY.get_sample_value("stafet_payout_runs", {"format": "csv"}) == 2
        assert metrics.REGISTRY.get_sample_value("stafet_payout_runs", {"format": "pain.001"}) == 1
        assert metrics.REGISTRY.get_sample_value("stafet_payout_last_run_timestamp_seconds") == 1711958430.0
        # What the ledger may not read of the runs: their files and their lines.
        for statement in ("SELECT content FROM payout_exports", "SELECT payee_iban FROM payout_lines"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await ledger.fetch(statement)
    finally:
        await ledger.close()
        await owner.close()
