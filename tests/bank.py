"""A bank in tests: reads our pain.001 and answers with a camt.054 notification.

It books every transfer of the payout file as a debit of the payer's account, except
those it is told to return (a credit back, with an ISO return reason), and can add
entries that are not ours. Its output is validated against the checked-in camt.054 XSD
by the parser, like any bank's file.
"""

from __future__ import annotations

import datetime as dt

from lxml import etree

from shared.domain.finance.iso20022 import CAMT_054, PAIN_001, validate

NS = {"p": PAIN_001}


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CAMT_054}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def transfers_of(pain001: bytes) -> list[tuple[str, str, str]]:
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


def camt054(transfers: list[tuple[str, str, str]], *, booked_on: dt.date, returned: dict[str, str] | None = None,
            message_id: str = "BANK-NTFCTN-1", account_iban: str = "DK4099995701127652") -> bytes:
    """A notification booking each (end-to-end id, amount, currency); ids in `returned`
    come back with that reason code instead."""
    returned = returned or {}
    root = etree.Element(f"{{{CAMT_054}}}Document", nsmap={None: CAMT_054})
    notification_root = _sub(root, "BkToCstmrDbtCdtNtfctn")
    header = _sub(notification_root, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", f"{booked_on.isoformat()}T18:00:00")
    notification = _sub(notification_root, "Ntfctn")
    _sub(notification, "Id", f"{message_id}-1")
    _sub(notification, "CreDtTm", f"{booked_on.isoformat()}T18:00:00")
    _sub(_sub(_sub(notification, "Acct"), "Id"), "IBAN", account_iban)
    for n, (end_to_end, amount, currency) in enumerate(transfers, start=1):
        back = end_to_end in returned
        entry = _sub(notification, "Ntry")
        _sub(entry, "Amt", amount, Ccy=currency)
        _sub(entry, "CdtDbtInd", "CRDT" if back else "DBIT")
        _sub(entry, "Sts", "BOOK")
        _sub(_sub(entry, "BookgDt"), "Dt", booked_on.isoformat())
        _sub(entry, "AcctSvcrRef", f"BANKREF-{n:06d}")
        family = _sub(_sub(_sub(entry, "BkTxCd"), "Domn"), "Cd", "PMNT").getparent()
        assert family is not None
        fmly = _sub(family, "Fmly")
        _sub(fmly, "Cd", "RCDT" if back else "ICDT")
        _sub(fmly, "SubFmlyCd", "RRTN" if back else "DMCT")
        details = _sub(_sub(entry, "NtryDtls"), "TxDtls")
        references = _sub(details, "Refs")
        _sub(references, "AcctSvcrRef", f"BANKREF-{n:06d}")
        _sub(references, "EndToEndId", end_to_end)
        _sub(_sub(_sub(details, "AmtDtls"), "TxAmt"), "Amt", amount, Ccy=currency)
        if back:
            _sub(_sub(_sub(details, "RtrInf"), "Rsn"), "Cd", returned[end_to_end])
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
