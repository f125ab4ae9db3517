"""A bank for development and tests: reads our pain.001 and answers as a bank would (pure).

`camt054` books transfers as debits of the payer's account and sends returned ones back
(a credit with return information and an ISO reason such as AC04), in the same
notification after their booking or in a later one; `pain002` is the status report on a
file: accepted, rejected whole, or rejected per transaction. Their output is read by the
same parsers as any bank's (the camt.054 is validated against the checked-in XSD).
`stafet finance simulate-bank` writes them for the README's walk-through; no real bank
is involved.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from shared.domain.finance.iso20022 import CAMT_054, PAIN_001, PAIN_002, validate

NS = {"p": PAIN_001}


def _sub(parent: etree._Element, tag: str, text: str | None = None, namespace: str = CAMT_054,
         **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{namespace}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def transfers_in(pain001: bytes) -> list[tuple[str, str, str]]:
    """(end-to-end id, amount, currency) of every transfer in a pain.001."""
    root = validate(pain001, PAIN_001)
    found = []
    for transaction in root.iterfind(".//p:CdtTrfTxInf", NS):
        amount = transaction.find("p:Amt/p:InstdAmt", NS)
        end_to_end = transaction.find("p:PmtId/p:EndToEndId", NS)
        assert amount is not None
        assert end_to_end is not None
        found.append((str(end_to_end.text), str(amount.text), str(amount.get("Ccy"))))
    return found


def message_id_of(pain001: bytes) -> str:
    return str(validate(pain001, PAIN_001).findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=NS))


def camt054(transfers: list[tuple[str, str, str]], *, booked_on: dt.date, returned: dict[str, str] | None = None,
            book: bool = True, message_id: str = "BANK-NTFCTN-1",
            account_iban: str = "DK4099995701127652") -> bytes:
    """A notification: each (end-to-end id, amount, currency) booked as a debit (unless
    `book` is False), then each id in `returned` sent back with that reason code."""
    returned = returned or {}
    root = etree.Element(f"{{{CAMT_054}}}Document", nsmap={None: CAMT_054})
    notification_root = _sub(root, "BkToCstmrDbtCdtNtfctn")
    header = _sub(notification_root, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", f"{booked_on.isoformat()}T18:00:00")
    notification = _sub(notification_root, "Ntfctn")
    _sub(notification, "Id", f"{message_id}-1"[:35])
    _sub(notification, "CreDtTm", f"{booked_on.isoformat()}T18:00:00")
    _sub(_sub(_sub(notification, "Acct"), "Id"), "IBAN", account_iban)
    entries = [(t, False) for t in transfers] if book else []
    entries += [(t, True) for t in transfers if t[0] in returned]
    for n, ((end_to_end, amount, currency), back) in enumerate(entries, start=1):
        reference = f"{message_id[:20]}-{n:06d}"
        entry = _sub(notification, "Ntry")
        _sub(entry, "Amt", amount, Ccy=currency)
        _sub(entry, "CdtDbtInd", "CRDT" if back else "DBIT")
        _sub(entry, "Sts", "BOOK")
        _sub(_sub(entry, "BookgDt"), "Dt", booked_on.isoformat())
        _sub(entry, "AcctSvcrRef", reference)
        family = _sub(_sub(_sub(entry, "BkTxCd"), "Domn"), "Cd", "PMNT").getparent()
        assert family is not None
        fmly = _sub(family, "Fmly")
        _sub(fmly, "Cd", "RCDT" if back else "ICDT")
        _sub(fmly, "SubFmlyCd", "RRTN" if back else "DMCT")
        details = _sub(_sub(entry, "NtryDtls"), "TxDtls")
        references = _sub(details, "Refs")
        _sub(references, "AcctSvcrRef", reference)
        _sub(references, "EndToEndId", end_to_end)
        _sub(_sub(_sub(details, "AmtDtls"), "TxAmt"), "Amt", amount, Ccy=currency)
        if back:
            _sub(_sub(_sub(details, "RtrInf"), "Rsn"), "Cd", returned[end_to_end])
    document = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    validate(document, CAMT_054)
    return document


def pain002(pain001: bytes, *, message_id: str, created_on: dt.date, rejected: dict[str, str] | None = None,
            reject_all: str | None = None) -> bytes:
    """The status report on a pain.001: accepted (ACCP), accepted in part (PART, with
    each transaction in `rejected` refused with its reason code), or refused whole
    (`reject_all`: the reason code)."""
    rejected = rejected or {}
    root = etree.Element(f"{{{PAIN_002}}}Document", nsmap={None: PAIN_002})
    report = _sub(root, "CstmrPmtStsRpt", namespace=PAIN_002)
    header = _sub(report, "GrpHdr", namespace=PAIN_002)
    _sub(header, "MsgId", message_id, namespace=PAIN_002)
    _sub(header, "CreDtTm", f"{created_on.isoformat()}T08:00:00", namespace=PAIN_002)
    original = _sub(report, "OrgnlGrpInfAndSts", namespace=PAIN_002)
    _sub(original, "OrgnlMsgId", message_id_of(pain001), namespace=PAIN_002)
    _sub(original, "OrgnlMsgNmId", "pain.001.001.03", namespace=PAIN_002)
    _sub(original, "GrpSts", "RJCT" if reject_all else ("PART" if rejected else "ACCP"), namespace=PAIN_002)
    if reject_all:
        _sub(_sub(_sub(original, "StsRsnInf", namespace=PAIN_002), "Rsn", namespace=PAIN_002), "Cd", reject_all,
             namespace=PAIN_002)
    if rejected:
        block = _sub(report, "OrgnlPmtInfAndSts", namespace=PAIN_002)
        first_block = validate(pain001, PAIN_001).findtext(".//p:PmtInf/p:PmtInfId", namespaces=NS)
        _sub(block, "OrgnlPmtInfId", str(first_block), namespace=PAIN_002)
        for end_to_end, reason in rejected.items():
            transaction = _sub(block, "TxInfAndSts", namespace=PAIN_002)
            _sub(transaction, "OrgnlEndToEndId", end_to_end, namespace=PAIN_002)
            _sub(transaction, "TxSts", "RJCT", namespace=PAIN_002)
            _sub(_sub(_sub(transaction, "StsRsnInf", namespace=PAIN_002), "Rsn", namespace=PAIN_002), "Cd", reason,
                 namespace=PAIN_002)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
