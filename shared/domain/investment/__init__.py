"""Social investment: who finances outcome contracts, and what they get back.

A pure domain ring (no Kafka, no database, no clock): the records an investor, a fund or
a finance office sends (`records.py`), a contract's return rule and its verdict at close
(`returns.py`), investor figures from dated cash flows (`figures.py`), and each
investor's and fund's position folded from what the ledger holds (`position.py`).
The design and its reasons: docs/investment.md.
"""
