"""Money leaving and coming back: payout files for the bank, and the bank's answers.

`payouts.py` decides which pending payments go into a payout file (pure), `iso20022.py`
writes pain.001 credit transfers and reads camt.054 notifications (validated against
the ISO 20022 schemas in `xsd/`), `bank_csv.py` the plain CSV equivalents, and
`settlements.py` turns the bank's answers into settlement records with reason codes.
"""
