-- Investment records in the ledger (docs/investment.md): commitments, disbursements,
-- funds, savings paid into a fund, and the return rule's verdict at close. They are
-- entries of the one hash chain like payments and settlements; the record and what its
-- postings depended on are kept in `investment`, so `stafet ledger verify` rebuilds each
-- entry from its row. They name no outcome and no subject.

ALTER TABLE ledger_entries
    ADD COLUMN investment jsonb,
    ALTER COLUMN outcome_id DROP NOT NULL,
    ALTER COLUMN subject DROP NOT NULL,
    ALTER COLUMN contract_version DROP NOT NULL,
    DROP CONSTRAINT ledger_entries_kind_check,
    ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
        'payment', 'clawback', 'settled', 'failed',
        'investment_committed', 'investment_disbursed', 'fund_established', 'savings_returned',
        'investment_closed')),
    DROP CONSTRAINT ledger_settlement_fields,
    ADD CONSTRAINT ledger_settlement_fields CHECK (
        (kind IN ('payment', 'clawback') AND settlement_id IS NULL AND investment IS NULL
            AND outcome_id IS NOT NULL AND subject IS NOT NULL AND contract_version IS NOT NULL)
        OR (kind = 'settled' AND settlement_id IS NOT NULL AND bank_reference IS NOT NULL
            AND settled_on IS NOT NULL AND investment IS NULL)
        OR (kind = 'failed' AND settlement_id IS NOT NULL AND failure_reason IS NOT NULL
            AND settled_on IS NOT NULL AND investment IS NULL)
        OR kind IN ('investment_committed', 'investment_disbursed', 'fund_established', 'savings_returned',
                    'investment_closed')
            AND settlement_id IS NULL AND investment IS NOT NULL AND outcome_id IS NULL AND subject IS NULL);

-- The planner reads every investment entry when an investment record arrives: few rows,
-- found without scanning the payments.
CREATE INDEX ledger_entries_investment ON ledger_entries (sequence) WHERE investment IS NOT NULL;
