-- Payout runs, bank returns and status reports (issue 28).
--
-- Returns: a paid transfer the payee's bank sends back (camt.054 RtrInf) is a settlement
-- entry of kind 'returned' (paid -> pending: owed again). A payment may now carry several
-- settlement entries (paid, returned, paid again), so the settlement fields hold for the
-- new kind too.
ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_kind_check,
    ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
        'payment', 'clawback', 'settled', 'failed', 'returned',
        'investment_committed', 'investment_disbursed', 'fund_established', 'savings_returned',
        'investment_closed')),
    DROP CONSTRAINT ledger_settlement_fields,
    ADD CONSTRAINT ledger_settlement_fields CHECK (
        (kind IN ('payment', 'clawback') AND settlement_id IS NULL AND investment IS NULL
            AND outcome_id IS NOT NULL AND subject IS NOT NULL AND contract_version IS NOT NULL)
        OR (kind = 'settled' AND settlement_id IS NOT NULL AND bank_reference IS NOT NULL
            AND settled_on IS NOT NULL AND investment IS NULL)
        OR (kind IN ('failed', 'returned') AND settlement_id IS NOT NULL AND failure_reason IS NOT NULL
            AND settled_on IS NOT NULL AND investment IS NULL)
        OR kind IN ('investment_committed', 'investment_disbursed', 'fund_established', 'savings_returned',
                    'investment_closed')
            AND settlement_id IS NULL AND investment IS NOT NULL AND outcome_id IS NULL AND subject IS NULL);

-- Runs: a payout export is a run with a file (its name, SHA-256, size and the bytes
-- themselves, so `--reissue` writes it again byte for byte) and states. A payment may be
-- in several runs over time (a run voided or rejected frees its payments; a return makes
-- a payment owed again), but in one live run at a time: `stafet finance payout` decides
-- that under an advisory lock. Rows written before runs had files keep NULL there.
ALTER TABLE payout_exports
    ADD COLUMN run_number integer,
    ADD COLUMN profile text,
    ADD COLUMN file_name text,
    ADD COLUMN sha256 char(64),
    ADD COLUMN size_bytes bigint CHECK (size_bytes >= 0),
    ADD COLUMN content bytea,
    DROP CONSTRAINT payout_exports_format_check,
    ADD CONSTRAINT payout_exports_format_check CHECK (format IN ('pain.001', 'csv', 'postings'));

ALTER TABLE payout_lines
    DROP CONSTRAINT payout_lines_pkey,
    ADD PRIMARY KEY (export_id, payment_id),
    ADD COLUMN transfer_id text,           -- the end-to-end id of the transfer it went in
    ADD COLUMN payee_kind text,
    ADD COLUMN payee_cost_centre text;
CREATE INDEX payout_lines_payment ON payout_lines (payment_id);
CREATE INDEX payout_lines_transfer ON payout_lines (transfer_id);

-- A run's states, appended: created, written (the file is durable; recorded in the
-- transaction that marks its payments), sent (handed to the bank), acknowledged or
-- rejected (the bank's pain.002), voided (freed for the next run; refused once
-- acknowledged). The latest row is the run's state; a run without rows was written.
CREATE TABLE payout_run_states (
    run_id      text        NOT NULL REFERENCES payout_exports (export_id),
    n           integer     NOT NULL CHECK (n > 0),
    state       text        NOT NULL CHECK (state IN ('created', 'written', 'sent', 'acknowledged', 'rejected',
                                                      'voided')),
    at          timestamptz NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, n)
);

-- Transactions the bank rejected before booking (pain.002, per transaction or payment
-- block): the payment is free for the next run; the reason stays here.
CREATE TABLE payout_rejections (
    run_id          text        NOT NULL REFERENCES payout_exports (export_id),
    payment_id      text        NOT NULL,
    reason          text        NOT NULL,
    bank_reference  text        NOT NULL,     -- the status report's message id
    recorded_at     timestamptz NOT NULL,
    PRIMARY KEY (run_id, payment_id)
);

-- Every bank status report imported, once (idempotent by its message id).
CREATE TABLE payout_status_reports (
    message_id   text        PRIMARY KEY,
    run_id       text        NOT NULL REFERENCES payout_exports (export_id),
    group_status text,
    recorded_at  timestamptz NOT NULL
);

CREATE TRIGGER payout_run_states_append_only BEFORE UPDATE OR DELETE ON payout_run_states
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER payout_rejections_append_only BEFORE UPDATE OR DELETE ON payout_rejections
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER payout_status_reports_append_only BEFORE UPDATE OR DELETE ON payout_status_reports
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER payout_run_states_no_truncate BEFORE TRUNCATE ON payout_run_states
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
CREATE TRIGGER payout_rejections_no_truncate BEFORE TRUNCATE ON payout_rejections
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
CREATE TRIGGER payout_status_reports_no_truncate BEFORE TRUNCATE ON payout_status_reports
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();

GRANT SELECT ON payout_run_states, payout_rejections, payout_status_reports TO stafet_operator;
GRANT SELECT, INSERT ON payout_run_states, payout_rejections, payout_status_reports TO stafet_finance;
