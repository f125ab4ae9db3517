-- The relay deletes outbox rows once the broker has acknowledged them (they are on Kafka
-- then), so the outbox holds only what is still to be published and stays small.
DELETE FROM verifier_outbox WHERE published_at IS NOT NULL;
DROP INDEX verifier_outbox_unpublished;
ALTER TABLE verifier_outbox DROP COLUMN published_at;
