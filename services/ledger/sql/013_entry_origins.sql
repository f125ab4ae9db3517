-- A forwarded record carries its signed original (services/ledger/origins.py): each
-- settlement and investment entry keeps, next to the forwarder's record, the record
-- finance (or the investor) signed on its input topic, so that verify re-checks the
-- signature of whoever may state it, not the forwarder's key alone. The input topics are
-- not kept forever; this copy is. Nullable: an instruction has no original.
-- Upgrading: settlement and investment entries written before this migration have no
-- original and verify names them `unproven_entry` (docs/security.md, "What this leaves open").
ALTER TABLE ledger_entry_sources
    ADD COLUMN origin_topic text,
    ADD COLUMN origin_key bytea,
    ADD COLUMN origin_value bytea,
    ADD COLUMN origin_key_id text,
    ADD COLUMN origin_signature text,
    ADD COLUMN origin_batch_proof text,
    ADD COLUMN origin_timestamp_ms bigint;
