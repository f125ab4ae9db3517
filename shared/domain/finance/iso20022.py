"""ISO 20022 files: pain.001 credit transfers out, camt.054 notifications in.

pain.001.001.03 and camt.054.001.02 are the versions Danish banks' corporate channels
take and send (the 2009 generation, still the common denominator). Their schemas are
checked in under `xsd/` (ISO 20022's published XSDs) and every file we write is
validated against them before anyone sees it; every file we read is validated before
we trust a single element of it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

from shared.domain.finance.money import AmountError, to_decimal_text, to_minor
from shared.domain.finance.payouts import PayoutLine

XSD_DIR = Path(__file__).parent / "xsd"
PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
CAMT_054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"
# A notification larger than this is refused before parsing (explicit limit).
MAX_FILE_BYTES = 50 * 1024 * 1024


class Iso20022Error(ValueError):
    """A file that is not what it claims: the message names the first problem."""


@cache
def _schema(namespace: str) -> etree.XMLSchema:
    name = namespace.rsplit(":", 1)[1]
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{name}.xsd")))


def _parser() -> etree.XMLParser:
    # No network, no entity expansion: a bank file is data, never a fetch instruction.
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False)


def validate(document: bytes, namespace: str) -> etree._Element:
    """Parse and validate against the checked-in XSD; the root element if valid."""
    if len(document) > MAX_FILE_BYTES:
        raise Iso20022Error(f"the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as error:
        raise Iso20022Error(f"not well-formed XML: {error}") from None
    if root.getroottree().docinfo.doctype:
        # ISO 20022 files have no DTD; one here could only declare entities we refuse.
        raise Iso20022Error("a DOCTYPE is not allowed in an ISO 20022 file")
    if etree.QName(root).namespace != namespace:
        raise Iso20022Error(f"not a {namespace.rsplit(':', 1)[1]} document "
                            f"(namespace {etree.QName(root).namespace!r})")
    schema = _schema(namespace)
    if not schema.validate(root):
        first = schema.error_log[0]
        raise Iso20022Error(f"line {first.line}: {first.message}")
    return root


# ---- pain.001: credit transfers ---------------------------------------------------------

def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{PAIN_001}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _agent(parent: etree._Element, tag: str, bic: str | None) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if bic:
        _sub(institution, "BIC", bic)
    else:  # domestic transfers: the bank finds the agent from the IBAN
        _sub(_sub(institution, "Othr"), "Id", "NOTPROVIDED")


def _control_sum(lines: Sequence[PayoutLine]) -> str:
    # The control sum adds decimals across currencies as the standard defines it; each
    # line's decimal is exact, so their Decimal sum is too.
    from decimal import Decimal
    return str(sum((Decimal(to_decimal_text(x.amount_minor, x.currency)) for x in lines), Decimal(0)))


def pain001(lines: Sequence[PayoutLine], message_id: str, created_at: dt.datetime,
            execution_date: dt.date, initiator: str) -> bytes:
    """A pain.001.001.03 document: one payment information block per payer and currency,
    one transaction per line with the payment id as its end-to-end id. Validated."""
    if not lines:
        raise Iso20022Error("a pain.001 needs at least one payment")
    root = etree.Element(f"{{{PAIN_001}}}Document", nsmap={None: PAIN_001})
    initiation = _sub(root, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    _sub(header, "NbOfTxs", str(len(lines)))
    _sub(header, "CtrlSum", _control_sum(lines))
    _sub(_sub(header, "InitgPty"), "Nm", initiator[:140])
    blocks: dict[tuple[str, str], list[PayoutLine]] = defaultdict(list)
    for line in lines:
        blocks[(line.payer, line.currency)].append(line)
    for number, ((payer, currency), block) in enumerate(sorted(blocks.items()), start=1):
        first = block[0]
        if first.payer_iban is None:
            raise Iso20022Error(f"payer {payer} has no IBAN")
        info = _sub(initiation, "PmtInf")
        _sub(info, "PmtInfId", f"{message_id[:30]}-{number:04d}")
        _sub(info, "PmtMtd", "TRF")
        _sub(info, "NbOfTxs", str(len(block)))
        _sub(info, "CtrlSum", _control_sum(block))
        _sub(info, "ReqdExctnDt", execution_date.isoformat())
        _sub(_sub(info, "Dbtr"), "Nm", first.payer_name[:140])
        debtor_account = _sub(info, "DbtrAcct")
        _sub(_sub(debtor_account, "Id"), "IBAN", first.payer_iban)
        _sub(debtor_account, "Ccy", currency)
        _agent(info, "DbtrAgt", first.payer_bic)
        for line in block:
            _transaction(info, line)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(document, PAIN_001)  # a file we cannot vouch for never leaves this function
    return bytes(document)


def _transaction(info: etree._Element, line: PayoutLine) -> None:
    if line.payee_iban is None:
        raise Iso20022Error(f"payee {line.payee} has no IBAN")
    transaction = _sub(info, "CdtTrfTxInf")
    _sub(_sub(transaction, "PmtId"), "EndToEndId", line.payment_id)
    _sub(_sub(transaction, "Amt"), "InstdAmt", to_decimal_text(line.amount_minor, line.currency),
         Ccy=line.currency)
    if line.payee_bic:
        _agent(transaction, "CdtrAgt", line.payee_bic)
    creditor = _sub(transaction, "Cdtr")
    _sub(creditor, "Nm", line.payee_name[:140])
    if line.payee_cvr:
        other = _sub(_sub(_sub(creditor, "Id"), "OrgId"), "Othr")
        _sub(other, "Id", line.payee_cvr)
        _sub(_sub(other, "SchmeNm"), "Prtry", "CVR")
    _sub(_sub(_sub(transaction, "CdtrAcct"), "Id"), "IBAN", line.payee_iban)
    _sub(_sub(transaction, "RmtInf"), "Ustrd",
         f"{line.contract_id} {line.outcome_id} {line.occurred_on.isoformat()}"[:140])


# ---- camt.054: what the bank booked -----------------------------------------------------

@dataclass(frozen=True)
class BankAnswer:
    """One booked transaction of a notification, by the end-to-end id we sent."""

    position: int  # 1-based, in document order, for messages
    end_to_end_id: str
    paid: bool  # False: the transfer was returned (RtrInf) or reversed
    amount_minor: int
    currency: str
    booked_on: dt.date
    bank_reference: str
    reason: str | None  # the return reason (ISO code such as AC04, or text) when not paid


@dataclass(frozen=True)
class SkippedEntry:
    position: int
    reason: str  # not_booked, no_end_to_end_id, not_a_payout, invalid_amount
    detail: str


def _text(element: etree._Element, path: str) -> str | None:
    found = element.find(path, {"c": CAMT_054})
    return found.text.strip() if found is not None and found.text else None


def parse_camt054(document: bytes) -> tuple[list[BankAnswer], list[SkippedEntry]]:
    """Every booked debit (our transfer left) and every returned transfer, per
    transaction detail; everything else is skipped with a reason."""
    root = validate(document, CAMT_054)
    ns = {"c": CAMT_054}
    message_id = _text(root, "c:BkToCstmrDbtCdtNtfctn/c:GrpHdr/c:MsgId") or ""
    answers: list[BankAnswer] = []
    skipped: list[SkippedEntry] = []
    position = 0
    for entry in root.iterfind("c:BkToCstmrDbtCdtNtfctn/c:Ntfctn/c:Ntry", ns):
        details = entry.findall("c:NtryDtls/c:TxDtls", ns) or [None]
        status = _text(entry, "c:Sts")
        booked = _text(entry, "c:BookgDt/c:Dt") or (_text(entry, "c:BookgDt/c:DtTm") or "")[:10]
        for detail in details:
            position += 1
            if status != "BOOK":
                skipped.append(SkippedEntry(position, "not_booked", f"entry status {status}"))
                continue
            if detail is None or not (end_to_end := _text(detail, "c:Refs/c:EndToEndId")):
                skipped.append(SkippedEntry(position, "no_end_to_end_id", "no end-to-end reference"))
                continue
            answer = _answer(entry, detail, position, end_to_end, booked, message_id, len(details) == 1)
            if isinstance(answer, SkippedEntry):
                skipped.append(answer)
            else:
                answers.append(answer)
    return answers, skipped


def _answer(entry: etree._Element, detail: etree._Element, position: int, end_to_end: str, booked: str,
            message_id: str, only_detail: bool) -> BankAnswer | SkippedEntry:
    returned = detail.find("c:RtrInf", {"c": CAMT_054}) is not None or _text(entry, "c:RvslInd") == "true"
    direction = _text(entry, "c:CdtDbtInd")
    if direction == "CRDT" and not returned:
        return SkippedEntry(position, "not_a_payout", f"{end_to_end}: a credit that is not a return")
    amount = detail.find("c:AmtDtls/c:TxAmt/c:Amt", {"c": CAMT_054})
    if amount is None:
        amount = detail.find("c:AmtDtls/c:InstdAmt/c:Amt", {"c": CAMT_054})
    if amount is None and only_detail:
        amount = entry.find("c:Amt", {"c": CAMT_054})
    if amount is None or amount.text is None:
        return SkippedEntry(position, "invalid_amount", f"{end_to_end}: no transaction amount")
    currency = amount.get("Ccy", "")
    try:
        amount_minor = to_minor(amount.text, currency)
    except AmountError as error:
        return SkippedEntry(position, "invalid_amount", f"{end_to_end}: {error}")
    reference = (_text(detail, "c:Refs/c:AcctSvcrRef") or _text(entry, "c:AcctSvcrRef")
                 or f"{message_id}/{position}")
    reason = (_text(detail, "c:RtrInf/c:Rsn/c:Cd") or _text(detail, "c:RtrInf/c:Rsn/c:Prtry")
              or _text(detail, "c:RtrInf/c:AddtlInf") or "returned by the bank") if returned else None
    return BankAnswer(position, end_to_end, not returned, amount_minor, currency,
                      dt.date.fromisoformat(booked), reference[:64], reason)
