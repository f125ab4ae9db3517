"""The ledger's gauges for /metrics: entries and money by contract and kind, the chain's
length, the result of the last full verification of the hash chain, and the payout runs.

Entries are append-only and their sequence is gapless and assigned under the chain
head's lock, so the totals are kept incrementally (rows after the last sequence seen)
instead of re-summing the whole ledger on every refresh.
"""

from __future__ import annotations

import time

import asyncpg
import structlog
from prometheus_client import Gauge

from services.ledger.audit import verify_chain
from shared.platform import metrics

log = structlog.get_logger("ledger")
# 0 while the ledger refuses to sign checkpoints because its anchors were removed
# (services/ledger/anchors.py): an alarm for whoever watches the ledger.
LEDGER_ANCHORS_OK = Gauge("stafet_ledger_anchors_ok",
                          "1 if the ledger's checkpoint anchors are intact and it signs checkpoints, 0 if it refuses",
                          registry=metrics.REGISTRY)
# The first entry the ledger found not derived from a signed journal record (0: none):
# it signs no checkpoint from there on (services/ledger/provenance.py).
LEDGER_UNPROVEN_ENTRY = Gauge("stafet_ledger_unproven_entry",
                              "Sequence of the first entry not derived from a signed record (0: none)",
                              registry=metrics.REGISTRY)


class LedgerGauges:
    def __init__(self, verify_interval_s: float) -> None:
        self.verify_interval_s = verify_interval_s
        self.after_sequence = 0
        self.next_verify = 0.0  # monotonic time; the first refresh verifies

    async def __call__(self, connection: asyncpg.Connection) -> None:
        rows = await connection.fetch(
            "SELECT contract_id, kind, currency, count(*) AS entries, sum(amount_minor) AS amount_minor,"
            " max(sequence) AS last_sequence FROM ledger_entries WHERE sequence > $1"
            " GROUP BY contract_id, kind, currency", self.after_sequence)
        # sum() of bigint is numeric in PostgreSQL (a Decimal here): exact, then int.
        totals = [((row["contract_id"], row["kind"], row["currency"].strip()), int(row["entries"]),
                   int(row["amount_minor"])) for row in rows]
        self.after_sequence = max([self.after_sequence, *(int(row["last_sequence"]) for row in rows)])
        for labels, entries, amount_minor in totals:
            metrics.LEDGER_ENTRIES.labels(*labels).inc(entries)
            metrics.LEDGER_AMOUNT.labels(*labels).inc(amount_minor)
        metrics.LEDGER_CHAIN_LENGTH.set(await connection.fetchval("SELECT sequence FROM ledger_chain_head"))
        if time.monotonic() >= self.next_verify:
            await self.verify(connection)
            self.next_verify = time.monotonic() + self.verify_interval_s
        await refresh_payout_runs(connection)

    async def verify(self, connection: asyncpg.Connection) -> None:
        # One snapshot: entries and the chain head as of the same moment, while the
        # projector goes on appending.
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            report = await verify_chain(connection)
        metrics.LEDGER_VERIFY_OK.set(1 if report.ok else 0)
        metrics.LEDGER_VERIFY_TIME.set(time.time())
        if not report.ok:
            log.error("ledger_chain_broken", first_bad_sequence=report.first_bad_sequence, problem=report.problem)


async def refresh_payout_runs(connection: asyncpg.Connection) -> None:
    """Payout runs by format, and when the last one was recorded: `stafet finance payout`
    writes them (payout_exports, append-only), so a finance team that stopped paying out,
    or a run made twice in a day, shows on the dashboard."""
    rows = await connection.fetch("SELECT format, count(*) AS runs FROM payout_exports GROUP BY format")
    metrics.PAYOUT_RUNS.clear()
    for row in rows:
        metrics.PAYOUT_RUNS.labels(row["format"]).set(int(row["runs"]))
    last = await connection.fetchval("SELECT extract(epoch FROM max(created_at)) FROM payout_exports")
    metrics.PAYOUT_LAST_RUN_TIME.set(float(last) if last is not None else 0.0)
