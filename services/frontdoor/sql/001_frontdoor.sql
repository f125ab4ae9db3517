-- The HTTP front door's memory of what it has forwarded: one row per event id, written
-- after the broker acknowledged the record. A POST that repeats an event id is answered
-- from here (duplicate, or conflicting_duplicate if the event differs) and forwards
-- nothing. The fingerprint is SHA-256 of the event without its subject: a hash of a
-- line holding a CPR number could be reversed by trying every CPR number, so the subject
-- is left out (ingest's own deduplication, on pseudonyms, still sees it).
CREATE TABLE frontdoor_events (
    event_id      text        PRIMARY KEY,
    institution   text        NOT NULL,
    fingerprint   char(64)    NOT NULL,
    accepted_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
