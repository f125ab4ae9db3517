-- Signed at the decision (docs/security.md): the verifier signs each outbox record in the
-- transaction that decides it, with the key only its process holds, and the relay forwards
-- the stored signature and signs nothing. A row inserted with the database login alone
-- carries no signature that verifies, and the ledger refuses it (unauthenticated_instruction).
-- Drain the outbox before this migration: rows written before it are forwarded unsigned.
ALTER TABLE verifier_outbox
    ADD COLUMN key_id text,
    ADD COLUMN signature text,
    ADD COLUMN batch_proof text;
-- The verifier's batch stores each signature on the rows it wrote (store.sign_outbox).
GRANT UPDATE (key_id, signature, batch_proof) ON verifier_outbox TO stafet_verifier;
