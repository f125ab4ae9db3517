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
from decimal import Decimal
from functools import cache
from pathlib import Path

from lxml import etree

from shared.domain.finance.money import AmountError, to_decimal_text, to_minor
from shared.domain.finance.payouts import PayoutLine, Transfer, transfers_of
from shared.domain.finance.profiles import BankProfile
from shared.domain.finance.settlements import AnswerStatus
from shared.domain.institutions import PaymentMethod

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


def _decimal_sum(amounts: Sequence[tuple[int, str]]) -> str:
    # The control sum adds decimals across currencies as the standard defines it; each
    # amount's decimal is exact, so their Decimal sum is too.
    return str(sum((Decimal(to_decimal_text(minor, currency)) for minor, currency in amounts), Decimal(0)))


def _control_sum(lines: Sequence[PayoutLine]) -> str:
    return _decimal_sum([(x.amount_minor, x.currency) for x in lines])


@dataclass(frozen=True)
class Initiator:
    """The initiating party: its name, and its id as the bank profile wants it (the
    customer agreement id, or the payer's CVR number) under the profile's scheme."""

    name: str
    id: str | None = None
    scheme: str | None = None


def initiator_for(profile: BankProfile | None, name: str, payer_cvr: str | None,
                  agreement_id: str | None) -> Initiator:
    if profile is None:
        return Initiator(name)
    if profile.initiating_party == "agreement":
        if not agreement_id:
            raise Iso20022Error(f"the {profile.name} profile needs the bank's customer agreement id (--agreement-id)")
        return Initiator(name, agreement_id, profile.initiating_party_scheme)
    if not payer_cvr:
        raise Iso20022Error(f"the {profile.name} profile identifies the payer by CVR number; the payer has none")
    return Initiator(name, payer_cvr, profile.initiating_party_scheme)


def pain001(lines: Sequence[PayoutLine], message_id: str, created_at: dt.datetime,
            execution_date: dt.date, initiator: str | Initiator, profile: BankProfile | None = None) -> bytes:
    """A pain.001.001.03 document: one payment information block per payer, currency and
    kind of transfer (to an IBAN, or to a NemKonto), one transaction per transfer
    (`transfers_of`: a payee's payments of the run together) with the transfer id as its
    end-to-end id and each payment id in its structured remittance. Validated."""
    if not lines:
        raise Iso20022Error("a pain.001 needs at least one payment")
    party = initiator if isinstance(initiator, Initiator) else Initiator(initiator)
    name_max = profile.name_max_length if profile else 140
    transfers = transfers_of(lines)
    root = etree.Element(f"{{{PAIN_001}}}Document", nsmap={None: PAIN_001})
    initiation = _sub(root, "CstmrCdtTrfInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    _sub(header, "NbOfTxs", str(len(transfers)))
    _sub(header, "CtrlSum", _control_sum(lines))
    initiating = _sub(header, "InitgPty")
    _sub(initiating, "Nm", party.name[:name_max])
    if party.id:
        other = _sub(_sub(_sub(initiating, "Id"), "OrgId"), "Othr")
        _sub(other, "Id", party.id)
        if party.scheme:
            _sub(_sub(other, "SchmeNm"), "Cd", party.scheme)
    blocks: dict[tuple[str, str, str], list[Transfer]] = defaultdict(list)
    for transfer in transfers:
        blocks[(transfer.first.payer, transfer.currency, transfer.first.payment_method.value)].append(transfer)
    for number, ((payer, currency, method), block) in enumerate(sorted(blocks.items()), start=1):
        first = block[0].first
        if first.payer_iban is None:
            raise Iso20022Error(f"payer {payer} has no IBAN")
        nemkonto = method == PaymentMethod.NEMKONTO.value
        if nemkonto and (profile is None or profile.nemkonto is None):
            raise Iso20022Error("a NemKonto transfer needs a bank profile with a NemKonto form")
        info = _sub(initiation, "PmtInf")
        _sub(info, "PmtInfId", f"{message_id[:30]}-{number:04d}")
        _sub(info, "PmtMtd", "TRF")
        if profile is not None:
            _sub(info, "BtchBookg", "true" if profile.batch_booking else "false")
        _sub(info, "NbOfTxs", str(len(block)))
        _sub(info, "CtrlSum", _control_sum([x for t in block for x in t.lines]))
        if profile is not None:
            kind = _sub(info, "PmtTpInf")
            _sub(_sub(kind, "SvcLvl"), "Cd", profile.service_level)
            if nemkonto and profile.nemkonto is not None:
                _sub(_sub(kind, "LclInstrm"), "Prtry", profile.nemkonto.local_instrument)
            _sub(_sub(kind, "CtgyPurp"), "Cd", profile.category_purpose)
        _sub(info, "ReqdExctnDt", execution_date.isoformat())
        _sub(_sub(info, "Dbtr"), "Nm", first.payer_name[:name_max])
        debtor_account = _sub(info, "DbtrAcct")
        _sub(_sub(debtor_account, "Id"), "IBAN", first.payer_iban)
        _sub(debtor_account, "Ccy", currency)
        _agent(info, "DbtrAgt", profile.bic if profile is not None else first.payer_bic)
        if profile is not None:
            _sub(info, "ChrgBr", profile.charge_bearer)
        for transfer in block:
            _transaction(info, transfer, profile, name_max)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(document, PAIN_001)  # a file we cannot vouch for never leaves this function
    return bytes(document)


def _transaction(info: etree._Element, transfer: Transfer, profile: BankProfile | None, name_max: int) -> None:
    line = transfer.first
    nemkonto = line.payment_method == PaymentMethod.NEMKONTO
    if not nemkonto and line.payee_iban is None:
        raise Iso20022Error(f"payee {line.payee} has no IBAN")
    if nemkonto and line.payee_cvr is None:
        raise Iso20022Error(f"NemKonto payee {line.payee} has no CVR number")
    transaction = _sub(info, "CdtTrfTxInf")
    _sub(_sub(transaction, "PmtId"), "EndToEndId", transfer.transfer_id)
    _sub(_sub(transaction, "Amt"), "InstdAmt", to_decimal_text(transfer.amount_minor, transfer.currency),
         Ccy=transfer.currency)
    if line.payee_bic and not nemkonto:
        _agent(transaction, "CdtrAgt", line.payee_bic)
    creditor = _sub(transaction, "Cdtr")
    _sub(creditor, "Nm", line.payee_name[:name_max])
    if line.payee_cvr:
        other = _sub(_sub(_sub(creditor, "Id"), "OrgId"), "Othr")
        _sub(other, "Id", line.payee_cvr)
        _sub(_sub(other, "SchmeNm"), "Prtry", "CVR")
    if nemkonto:
        assert profile is not None
        assert profile.nemkonto is not None
        assert line.payee_cvr is not None
        other = _sub(_sub(_sub(transaction, "CdtrAcct"), "Id"), "Othr")
        _sub(other, "Id", line.payee_cvr)
        _sub(_sub(other, "SchmeNm"), "Prtry", profile.nemkonto.account_scheme)
    else:
        assert line.payee_iban is not None
        _sub(_sub(_sub(transaction, "CdtrAcct"), "Id"), "IBAN", line.payee_iban)
    remittance = _sub(transaction, "RmtInf")
    if transfer.transfer_id == line.payment_id:  # a line recorded before transfers were aggregated
        _sub(remittance, "Ustrd", f"{line.contract_id} {line.outcome_id} {line.occurred_on.isoformat()}"[:140])
        return
    _sub(remittance, "Ustrd", remittance_text(transfer))
    for x in transfer.lines:
        structured = _sub(remittance, "Strd")
        document = _sub(structured, "RfrdDocInf")
        _sub(_sub(_sub(document, "Tp"), "CdOrPrtry"), "Prtry", "STAFET-PAYMENT")
        _sub(document, "Nb", x.payment_id)
        _sub(document, "RltdDt", x.occurred_on.isoformat())
        _sub(_sub(structured, "RfrdDocAmt"), "RmtdAmt", to_decimal_text(x.amount_minor, x.currency), Ccy=x.currency)


def remittance_text(transfer: Transfer) -> str:
    """The unstructured line a payee's statement shows (140 characters at most)."""
    contracts = sorted({x.contract_id for x in transfer.lines})
    return (f"Stafet {len(transfer.lines)} betaling(er) {', '.join(contracts)}; advis {transfer.transfer_id}")[:140]


# ---- camt.054: what the bank booked -----------------------------------------------------

@dataclass(frozen=True)
class BankAnswer:
    """One booked transaction of a notification, by the end-to-end id we sent."""

    position: int  # 1-based, in document order, for messages
    end_to_end_id: str
    status: AnswerStatus  # paid (a booked debit) or returned (RtrInf, or a reversal)
    amount_minor: int
    currency: str
    booked_on: dt.date
    bank_reference: str
    reason: str | None  # the return reason (ISO code such as AC04, or text) when returned

    @property
    def paid(self) -> bool:
        return self.status == AnswerStatus.PAID


@dataclass(frozen=True)
class SkippedEntry:
    position: int
    reason: str  # not_booked, no_end_to_end_id, not_a_payout, invalid_amount
    detail: str


def _text(element: etree._Element, path: str, namespace: str = CAMT_054) -> str | None:
    found = element.find(path, {"c": namespace})
    return found.text.strip() if found is not None and found.text else None


def parse_camt054(document: bytes) -> tuple[list[BankAnswer], list[SkippedEntry]]:
    """Every booked debit (our transfer left) and every returned transfer (a credit
    with return information: AC04 closed account, AC06 blocked, MD07 deceased, ...), per
    transaction detail and in document order, so a transfer booked and returned in one
    notification is paid, then returned; everything else is skipped with a reason."""
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
    return BankAnswer(position, end_to_end, AnswerStatus.RETURNED if returned else AnswerStatus.PAID,
                      amount_minor, currency, dt.date.fromisoformat(booked), reference[:64], reason)


# ---- pain.002: the bank's status report on a payout file --------------------------------

PAIN_002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
_ACCEPTED = frozenset({"ACCP", "ACTC", "ACSP", "ACSC", "ACWC", "PART", "PDNG", "RCVD"})


@dataclass(frozen=True)
class StatusLine:
    """A transaction's (or a payment information block's) status in a pain.002."""

    reference: str  # the original end-to-end id, or payment information id
    rejected: bool
    status: str
    reason: str | None


@dataclass(frozen=True)
class StatusReport:
    message_id: str
    original_message_id: str  # the run id: our pain.001's message id
    group_status: str | None
    group_reason: str | None
    blocks: tuple[StatusLine, ...]
    transactions: tuple[StatusLine, ...]

    @property
    def rejected(self) -> bool:
        """The whole file was refused: none of it will be paid."""
        return self.group_status == "RJCT"


def _reason(element: etree._Element) -> str | None:
    return (_text(element, "c:StsRsnInf/c:Rsn/c:Cd", PAIN_002) or _text(element, "c:StsRsnInf/c:Rsn/c:Prtry", PAIN_002)
            or _text(element, "c:StsRsnInf/c:AddtlInf", PAIN_002))


def parse_pain002(document: bytes) -> StatusReport:
    """The bank's payment status report (pain.002.001.03): accepted, the whole file
    rejected, or rejected per payment block or per transaction, with ISO reason codes.
    No XSD of pain.002 is checked in, so the elements read are checked one by one."""
    if len(document) > MAX_FILE_BYTES:
        raise Iso20022Error(f"the file is larger than {MAX_FILE_BYTES} bytes")
    try:
        root = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as error:
        raise Iso20022Error(f"not well-formed XML: {error}") from None
    if root.getroottree().docinfo.doctype:
        raise Iso20022Error("a DOCTYPE is not allowed in an ISO 20022 file")
    if etree.QName(root).namespace != PAIN_002:
        raise Iso20022Error(f"not a pain.002.001.03 document (namespace {etree.QName(root).namespace!r})")
    report = root.find("c:CstmrPmtStsRpt", {"c": PAIN_002})
    if report is None:
        raise Iso20022Error("no CstmrPmtStsRpt element")
    message_id = _text(report, "c:GrpHdr/c:MsgId", PAIN_002)
    original = report.find("c:OrgnlGrpInfAndSts", {"c": PAIN_002})
    if not message_id or original is None or not (original_id := _text(original, "c:OrgnlMsgId", PAIN_002)):
        raise Iso20022Error("a pain.002 needs GrpHdr/MsgId and OrgnlGrpInfAndSts/OrgnlMsgId")
    group_status = _text(original, "c:GrpSts", PAIN_002)
    if group_status is not None and group_status != "RJCT" and group_status not in _ACCEPTED:
        raise Iso20022Error(f"unknown group status {group_status!r}")
    blocks: list[StatusLine] = []
    transactions: list[StatusLine] = []
    for block in report.iterfind("c:OrgnlPmtInfAndSts", {"c": PAIN_002}):
        block_id = _text(block, "c:OrgnlPmtInfId", PAIN_002)
        if not block_id:
            raise Iso20022Error("an OrgnlPmtInfAndSts without OrgnlPmtInfId")
        if (status := _text(block, "c:PmtInfSts", PAIN_002)) is not None:
            blocks.append(StatusLine(block_id, status == "RJCT", status, _reason(block)))
        for transaction in block.iterfind("c:TxInfAndSts", {"c": PAIN_002}):
            end_to_end = _text(transaction, "c:OrgnlEndToEndId", PAIN_002)
            status = _text(transaction, "c:TxSts", PAIN_002)
            if not end_to_end or not status:
                raise Iso20022Error("a TxInfAndSts needs OrgnlEndToEndId and TxSts")
            transactions.append(StatusLine(end_to_end, status == "RJCT", status, _reason(transaction)))
    return StatusReport(message_id[:64], original_id, group_status, _reason(original), tuple(blocks),
                        tuple(transactions))


def blocks_of(pain: bytes) -> dict[str, tuple[str, ...]]:
    """Each payment information block of one of our pain.001 files: its end-to-end ids."""
    root = validate(pain, PAIN_001)
    ns = {"p": PAIN_001}
    return {str(block.findtext("p:PmtInfId", namespaces=ns)):
            tuple(str(x.text) for x in block.iterfind("p:CdtTrfTxInf/p:PmtId/p:EndToEndId", ns))
            for block in root.iterfind("p:CstmrCdtTrfInitn/p:PmtInf", ns)}
