"""`stafet invest ...`: how investors, funds and finance offices send investment records.

`publish FILE`: a JSON Lines file of investment records (`shared/domain/investment/records.py`),
every line validated first (file:line: field: problem, nothing published if any is bad),
signed and published to the investments topic keyed by investor or fund. A commitment or
disbursement is signed by the investor it names (`investor:<id>`), every other record by
a finance system; the ledger refuses anything else (`unauthenticated_investment`).

`close --contract FILE --on D`: the commissioner's finance office closes the investment
under a contract with a return rule; the record carries the contract's terms, the ledger
computes the verdict from what it holds (docs/investment.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from cli.jsonl import read_records
from cli.signed import send_signed, signer_or_fail
from shared.domain.contracts.loader import ContractFileError, load_contract
from shared.domain.investment.records import (
    INVESTMENT_RECORD,
    SIGNED_BY_INVESTOR,
    InvestmentClosed,
    InvestmentRecord,
    record_key,
)
from shared.domain.signing import RecordSigner
from shared.platform.settings import Settings
from shared.platform.topics import INVESTMENTS
from shared.platform.trust import ConfigurationError, record_signer

app = typer.Typer(rich_markup_mode=None, help="Investment records: commitments, disbursements, funds, savings, closes.",
                  no_args_is_help=True)
DATE_FORMATS = ["%Y-%m-%d"]
RECORDS_MAX = 100_000  # a file of investment records is small; more is a mistake


def _read(file: Path) -> list[InvestmentRecord]:
    return read_records(file, INVESTMENT_RECORD.validate_json, limit=RECORDS_MAX)


def _signer(settings: Settings, record: InvestmentRecord, key_file: Path | None) -> RecordSigner:
    if record.kind not in SIGNED_BY_INVESTOR:
        return signer_or_fail(settings, "finance", key_file)
    try:
        return record_signer(settings, f"investor:{record_key(record)}", key_file)
    except ConfigurationError as error:
        fail(str(error))


TopicOption = Annotated[str | None, typer.Option(help="The investments topic (default: this installation's)")]


def _publish(settings: Settings, records: list[InvestmentRecord], key_file: Path | None,
             topic: str | None = None) -> None:
    by_principal: dict[str, list[tuple[bytes | None, bytes]]] = {}
    signers: dict[str, RecordSigner] = {}
    for record in records:
        role = "investor" if record.kind in SIGNED_BY_INVESTOR else "finance"
        signer = _signer(settings, record, key_file)
        name = f"{role}|{signer.key_id}"
        signers[name] = signer
        by_principal.setdefault(name, []).append((record_key(record).encode(), record.model_dump_json().encode()))
    if key_file is not None and len({name.split("|")[0] for name in by_principal}) > 1:
        fail("with --signing-key every record must have the same kind of signer: put the investor's "
             "commitments and disbursements and finance's records in separate files")
    try:
        for name, batch in by_principal.items():
            asyncio.run(send_signed(settings.kafka_bootstrap_servers, "stafet-invest", topic or INVESTMENTS.name, batch,
                                    signers[name], principal=name.split("|")[0]))
    except Exception as error:  # noqa: BLE001 - any broker failure is reported, not traced
        fail(f"publishing investment records failed: {error}")


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="JSON Lines file of investment records")],
    signing_key: Annotated[Path | None, typer.Option(
        help="The investor's (or finance system's) Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
    topic: TopicOption = None,
) -> None:
    """Validate, sign and publish investment records to the ledger."""
    records = _read(file)
    _publish(Settings(), records, signing_key, topic)
    kinds = sorted({r.kind for r in records})
    typer.echo(f"published {len(records)} investment record(s) ({', '.join(kinds) or 'none'})")


@app.command("close")
def close(
    contract: Annotated[Path, typer.Option(help="The contract file whose return rule applies")],
    on: Annotated[dt.datetime, typer.Option(formats=DATE_FORMATS, help="The day the investment closes")],
    signing_key: Annotated[Path | None, typer.Option(
        help="The finance system's Ed25519 signing key (default SIGNING_KEY_FILE)")] = None,
    topic: TopicOption = None,
) -> None:
    """Close the investment under a contract: the ledger applies its return rule."""
    try:
        terms = load_contract(contract)
    except ContractFileError as error:
        fail(str(error))
    rule = terms.investment
    if rule is None:
        fail(f"{contract}: {terms.contract_id} has no return rule (investment:)")
    record = InvestmentClosed(investor=rule.investor, contract_id=terms.contract_id, closed_on=on.date(),
                              max_return=rule.max_return,
                              guarantor=rule.guarantee.guarantor if rule.guarantee else None,
                              guarantee_minor=rule.guarantee.amount_minor if rule.guarantee else 0,
                              payer=terms.payer)
    _publish(Settings(), [record], signing_key, topic)
    typer.echo(f"published the close of {rule.investor} under {terms.contract_id} on {record.closed_on}")
