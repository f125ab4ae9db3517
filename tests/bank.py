"""A bank in tests: the simulated bank the CLI also uses (shared/domain/finance/simulated_bank.py)."""

from __future__ import annotations

from shared.domain.finance.simulated_bank import camt054, message_id_of, pain002, transfers_in

transfers_of = transfers_in

__all__ = ["camt054", "message_id_of", "pain002", "transfers_in", "transfers_of"]
