"""Read side of investments: every investor's and fund's position, from the ledger.

The same book the projector decides with (`investment_store.load_book`: the investment
entries in chain order, the verdicts recorded at close, the outcome payments settled to
investors), folded by the pure `shared.domain.investment.position.fold`.
"""

from __future__ import annotations

import asyncpg

from services.ledger.investment_store import load_book
from shared.domain.investment.position import Positions, fold


async def investor_positions(database_url: str) -> Positions:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            book = await load_book(connection)
    finally:
        await connection.close()
    return fold(book.records, book.verdicts, book.repayments)
