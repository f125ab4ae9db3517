-- Least privilege (docs/security.md): the ingest service runs as stafet_ingest, which
-- may read and add to its dedup table and nothing else. The tables belong to the owner
-- role that applies these migrations; the runtime roles are created by the deployment
-- (or the local stack) before the first migration.
GRANT SELECT, INSERT ON ingest_seen_events TO stafet_ingest;
