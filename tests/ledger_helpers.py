"""Reading the ledger back in tests."""

from __future__ import annotations

import asyncpg

from services.ledger.audit import ChainReport, verify_chain


async def ledger_state(database_url: str) -> dict[str, object]:
    connection = await asyncpg.connect(database_url)
    try:
        # One snapshot for all four reads: a batch the ledger commits in between would
        # otherwise show its lines and balances but not its entries.
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            entries = await connection.fetch("SELECT entry_id FROM ledger_entries")
            unbalanced = await connection.fetchval(
                "SELECT count(*) FROM (SELECT sequence FROM ledger_lines GROUP BY sequence"
                " HAVING sum(debit_minor) <> sum(credit_minor)) AS bad")
            lines = await connection.fetchval("SELECT count(*) FROM ledger_lines")
            balances = {r["account"]: int(r["balance"]) for r in await connection.fetch(
                "SELECT account, sum(credit_minor) - sum(debit_minor) AS balance"
                " FROM ledger_lines GROUP BY account")}
    finally:
        await connection.close()
    return {"entry_ids": [r["entry_id"] for r in entries], "unbalanced": unbalanced,
            "lines": lines, "balances": {k: v for k, v in balances.items() if v != 0}}


async def entry_count(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM ledger_entries"))
    finally:
        await connection.close()


async def chain_report(database_url: str) -> ChainReport:
    connection = await asyncpg.connect(database_url)
    try:
        return await verify_chain(connection)
    finally:
        await connection.close()


def signed_sources(records: list[object], topic: str | None = None) -> dict[int, object]:
    """id() of each journal record -> the signed record its real writer would have put on
    the journal (`services/ledger/provenance.py`), for tests that apply records directly."""
    import time

    from services.ledger.provenance import SourceRecord
    from shared.domain.signing import RecordSigner
    from shared.platform.topics import PAYMENTS
    from shared.platform.trust import development_writer

    journal = topic or PAYMENTS.name
    sources: dict[int, object] = {}
    for record in records:
        value = record.model_dump_json().encode()  # type: ignore[attr-defined]
        key = b"k"
        signer = RecordSigner.development(development_writer(journal, value))
        (_, key_id), (_, signature) = signer.headers(journal, key, value)
        now = int(time.time() * 1000)
        sources[id(record)] = SourceRecord(journal, key, value, key_id.decode(), signature.decode(), None, now,
                                           forwarded_original(journal, key, value, now))
    return sources


def forwarded_original(journal: str, key: bytes, value: bytes, timestamp: int) -> object | None:
    """What the ledger's forwarder keeps with a settlement or an investment record: the
    original its stater signed on its input topic (services/ledger/origins.py); none for
    an instruction."""
    import json

    from services.ledger.origins import OriginRecord, input_topic_of
    from shared.domain.signing import RecordSigner
    from shared.platform.topics import INVESTMENTS, SETTLEMENTS
    from shared.platform.trust import development_writer

    kind = json.loads(value).get("kind")
    if kind in ("payment", "clawback"):
        return None
    source = input_topic_of(journal, SETTLEMENTS if kind == "settlement" else INVESTMENTS)
    signer = RecordSigner.development("finance:dev" if kind == "settlement" else development_writer(source, value))
    return OriginRecord(source, key, value, tuple(signer.headers(source, key, value)), timestamp)
