-- Anchors an administrator cannot remove (docs/security.md): every checkpoint the ledger
-- publishes is also recorded here, append-only, so that a checkpoint later deleted from
-- the broker is noticed (by the ledger at start, which then refuses to re-checkpoint
-- history older than it, and by `stafet ledger verify`), whoever administers the broker.
-- A rebuild (TRUNCATE of entries and lines) leaves it alone: the entries it replays are
-- the same, so the recorded hashes still hold.
CREATE TABLE ledger_anchor_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_sequence bigint NOT NULL CHECK (first_sequence >= 1),
    last_sequence bigint NOT NULL CHECK (last_sequence >= first_sequence),
    last_entry_hash text NOT NULL CHECK (last_entry_hash ~ '^[0-9a-f]{64}$'),
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_anchor_log_last ON ledger_anchor_log (last_sequence);
CREATE TRIGGER ledger_anchor_log_append_only BEFORE UPDATE OR DELETE ON ledger_anchor_log
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

GRANT SELECT, INSERT ON ledger_anchor_log TO stafet_ledger;
GRANT SELECT ON ledger_anchor_log TO stafet_operator;
CREATE TRIGGER ledger_anchor_log_no_truncate BEFORE TRUNCATE ON ledger_anchor_log
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();
