-- Payout files: which pending payments went out to the bank, in which file.
--
-- A payment is exported once, ever: payout_lines' primary key is the payment id, so a
-- second export of the same date range (or a race of two) can never put it in another
-- file; `stafet finance payout` reports it as already exported instead. Each line keeps
-- the master data it was paid with, so `--reissue` rewrites the identical file even if
-- the registry changed since. Like the ledger, nothing here is updated or deleted, and a
-- ledger rebuild leaves it alone: these are facts about files handed to a bank, not a
-- projection of the journal.

CREATE TABLE payout_exports (
    export_id       text        PRIMARY KEY,          -- the pain.001 message id
    format          text        NOT NULL CHECK (format IN ('pain.001', 'csv')),
    date_from       date        NOT NULL,
    date_to         date        NOT NULL,
    execution_date  date        NOT NULL,
    created_at      timestamptz NOT NULL,
    CHECK (date_from <= date_to)
);

CREATE TABLE payout_lines (
    payment_id      text        PRIMARY KEY,          -- once, ever
    export_id       text        NOT NULL REFERENCES payout_exports (export_id),
    line            integer     NOT NULL,
    contract_id     text        NOT NULL,
    outcome_id      text        NOT NULL,
    occurred_on     date        NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    currency        char(3)     NOT NULL,
    payer           text        NOT NULL,
    payer_name      text        NOT NULL,
    payer_iban      text,
    payer_bic       text,
    payee           text        NOT NULL,
    payee_name      text        NOT NULL,
    payee_cvr       text,
    payee_ean       text,
    payee_iban      text,
    payee_bic       text,
    payment_method  text        NOT NULL CHECK (payment_method IN ('bank_transfer', 'nemkonto')),
    UNIQUE (export_id, line)
);

CREATE TRIGGER payout_exports_append_only BEFORE UPDATE OR DELETE ON payout_exports
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER payout_lines_append_only BEFORE UPDATE OR DELETE ON payout_lines
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER payout_exports_no_truncate BEFORE TRUNCATE ON payout_exports
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
CREATE TRIGGER payout_lines_no_truncate BEFORE TRUNCATE ON payout_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
