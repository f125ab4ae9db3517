-- Event ids ingest has forwarded, so that a duplicate is dropped across restarts.
-- Only the producer's event id and a hash of the pseudonymised transition are kept:
-- never a CPR number (ingest rejects event ids that contain one).
CREATE TABLE ingest_seen_events (
    event_id     text        PRIMARY KEY,
    content_hash char(64)    NOT NULL,
    first_seen   timestamptz NOT NULL DEFAULT now()
);
