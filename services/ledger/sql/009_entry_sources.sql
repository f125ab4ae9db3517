-- Every øre traceable to signed facts (docs/security.md): each entry keeps the signed
-- journal record it was derived from, bytes, key id, signature and batch proof, in the
-- same transaction as the entry. `stafet ledger verify` and the ledger (before it signs a
-- checkpoint) re-check that the record verifies for a principal entitled to it and that
-- the posting rules turn it into exactly this entry; a row inserted with a database login
-- alone has no such record, and no login can make one without the signer's key.
-- Not part of the entry's content hash: the chain (and every checkpoint) is unchanged.
CREATE TABLE ledger_entry_sources (
    sequence bigint PRIMARY KEY,  -- the entry's (no foreign key: TRUNCATE stays guarded by its trigger)
    topic text NOT NULL,
    record_key bytea,
    record_value bytea NOT NULL,
    key_id text NOT NULL,
    signature text NOT NULL,
    batch_proof text,
    record_timestamp_ms bigint NOT NULL
);
CREATE TRIGGER ledger_entry_sources_append_only BEFORE UPDATE OR DELETE ON ledger_entry_sources
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_entry_sources_no_truncate BEFORE TRUNCATE ON ledger_entry_sources
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_forbid_truncate();

GRANT SELECT, INSERT ON ledger_entry_sources TO stafet_ledger;
GRANT SELECT ON ledger_entry_sources TO stafet_operator, stafet_finance;
