-- Two-phase settlement: finance systems answer each instruction with paid or failed.
-- A settlement is an entry of its own (kind 'settled' or 'failed'), one per instruction
-- at most (entry_id 'settlement:<payment id>' is unique), carrying the finance system's
-- settlement id, bank reference, date or failure reason.

ALTER TABLE ledger_entries
    ADD COLUMN settlement_id  text,
    ADD COLUMN bank_reference text,
    ADD COLUMN settled_on     date,
    ADD COLUMN failure_reason text,
    ADD CONSTRAINT ledger_settlement_fields CHECK (
        (kind IN ('payment', 'clawback') AND settlement_id IS NULL)
        OR (kind = 'settled' AND settlement_id IS NOT NULL AND bank_reference IS NOT NULL
            AND settled_on IS NOT NULL)
        OR (kind = 'failed' AND settlement_id IS NOT NULL AND failure_reason IS NOT NULL
            AND settled_on IS NOT NULL));

CREATE INDEX ledger_entries_payment ON ledger_entries (payment_id);

-- TRUNCATE is a statement, not a row change: guard it too. Only `stafet ledger rebuild`
-- may empty the projection, and it says so by setting stafet.ledger_rebuild for its
-- own transaction.
CREATE FUNCTION ledger_forbid_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('stafet.ledger_rebuild', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the ledger is append-only: TRUNCATE on % is only for a rebuild',
            TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
CREATE TRIGGER ledger_lines_no_truncate BEFORE TRUNCATE ON ledger_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
