"""What investors, funds and finance offices send on the investments topic.

Each record is a past-tense fact with an id its sender chooses and reuses on a retry
(the ledger's entry id derives from it, so a redelivery or a replay is one entry):

- `investment_committed`: an investor (or a fund) promises to finance a provider under
  an outcome contract (signed by `investor:<investor>`);
- `investment_disbursed`: a tranche of that promise paid to the provider (same signer);
- `fund_established`: a payer sets a budget aside in a social investment fund
  (signed by a finance system);
- `savings_returned`: a payer pays what a pilot saved it into the fund that financed the
  pilot (signed by a finance system);
- `investment_closed`: the contract is over for this investor; the ledger applies the
  return rule to what it holds (signed by a finance system: the commissioner's).

The ledger's forwarder checks the signature and forwards each record onto the ledger
journal (docs/investment.md), where it takes its place in the hash chain's order.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from shared.domain.events import Currency, Frozen, Identifier, PaymentInstruction, Settlement

INVESTMENT_SCHEMA_VERSION = 1
AMOUNT_MINOR_MAX = 10**15  # as contracts: far above any public budget
Amount = Annotated[int, Field(gt=0, le=AMOUNT_MINOR_MAX)]
# A return rate (0.20 is 20 %): at most 10, i.e. 1000 %, which no contract comes near.
ReturnRate = Annotated[Decimal, Field(ge=0, le=10, max_digits=12, decimal_places=6)]


class InvestmentCommitted(Frozen):
    kind: Literal["investment_committed"] = "investment_committed"
    schema_version: Literal[1] = 1
    commitment_id: Identifier
    investor: Identifier  # an investor or a fund
    provider: Identifier  # who does the work
    contract_id: Identifier
    amount_minor: Amount
    currency: Currency
    committed_on: dt.date


class InvestmentDisbursed(Frozen):
    kind: Literal["investment_disbursed"] = "investment_disbursed"
    schema_version: Literal[1] = 1
    disbursement_id: Identifier
    commitment_id: Identifier
    investor: Identifier  # must be the commitment's: the signer is checked against it
    amount_minor: Amount
    currency: Currency
    disbursed_on: dt.date


class FundEstablished(Frozen):
    kind: Literal["fund_established"] = "fund_established"
    schema_version: Literal[1] = 1
    fund: Identifier
    payer: Identifier  # whose money it is (Norrköping: the municipality)
    budget_minor: Amount
    currency: Currency
    established_on: dt.date


class SavingsReturned(Frozen):
    kind: Literal["savings_returned"] = "savings_returned"
    schema_version: Literal[1] = 1
    return_id: Identifier
    fund: Identifier
    contract_id: Identifier  # the pilot whose savings these are
    payer: Identifier  # who saved and pays in
    amount_minor: Amount
    currency: Currency
    returned_on: dt.date


class InvestmentClosed(Frozen):
    """The contract's return rule, applied once to what the ledger holds for the
    investor under the contract. The terms are the contract's (`stafet invest close`
    copies them from the contract file); the amounts are the ledger's, never the
    sender's."""

    kind: Literal["investment_closed"] = "investment_closed"
    schema_version: Literal[1] = 1
    investor: Identifier
    contract_id: Identifier
    closed_on: dt.date
    max_return: ReturnRate
    guarantor: Identifier | None = None
    guarantee_minor: Annotated[int, Field(ge=0, le=AMOUNT_MINOR_MAX)] = 0
    # The contract's payer (`stafet invest close` copies it from the contract file): with
    # tenants (docs/tenancy.md) only its finance principals may close, and the journal
    # refuses a payer other than the one the contract's payments name. None: a close sent
    # before closes named their payer (and kept out of the entry's content, so the hashes
    # of entries chained before stay as they were).
    payer: Identifier | None = None


InvestmentRecord = InvestmentCommitted | InvestmentDisbursed | FundEstablished | SavingsReturned | InvestmentClosed
INVESTMENT_KINDS = ("investment_committed", "investment_disbursed", "fund_established", "savings_returned",
                    "investment_closed")
# Who may send each record: the investor it names, or a finance system.
SIGNED_BY_INVESTOR = ("investment_committed", "investment_disbursed")

INVESTMENT_RECORD: TypeAdapter[InvestmentRecord] = TypeAdapter(
    Annotated[InvestmentRecord, Field(discriminator="kind")])
# The ledger journal with investment records forwarded onto it (docs/investment.md).
LEDGER_JOURNAL_RECORD: TypeAdapter[PaymentInstruction | Settlement | InvestmentRecord] = TypeAdapter(
    Annotated[PaymentInstruction | Settlement | InvestmentRecord, Field(discriminator="kind")])


def record_key(record: InvestmentRecord) -> str:
    """The Kafka key: one investor's (or fund's) records stay in order on one partition."""
    if isinstance(record, FundEstablished | SavingsReturned):
        return record.fund
    return record.investor


def record_day(record: InvestmentRecord) -> dt.date:
    match record:
        case InvestmentCommitted():
            return record.committed_on
        case InvestmentDisbursed():
            return record.disbursed_on
        case FundEstablished():
            return record.established_on
        case SavingsReturned():
            return record.returned_on
        case InvestmentClosed():
            return record.closed_on
