-- The evidence behind each instruction (the trigger event's id), for audit and for
-- measuring publish-to-ledger latency; and the moment a row was written rather than
-- the start of its transaction.
ALTER TABLE ledger_entries
    ADD COLUMN trigger_event_id text,
    ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
