-- An event id belongs to the institution that reported it (issue 25): deduplication and
-- conflicts are judged per (reported_by, event_id), so an institution cannot take an id
-- another one is about to use. Rows from before this migration have no reporter ('')
-- and still count as seen for any reporter with that id (services/ingest/dedup.py).
-- The subject's pseudonym and the event's type are kept so that a correction can be
-- checked against the event it corrects (who reported it, whose it is, what it was).
ALTER TABLE ingest_seen_events ADD COLUMN reported_by text NOT NULL DEFAULT '';
ALTER TABLE ingest_seen_events ALTER COLUMN reported_by DROP DEFAULT;
ALTER TABLE ingest_seen_events ADD COLUMN subject text;
ALTER TABLE ingest_seen_events ADD COLUMN event_type text;
ALTER TABLE ingest_seen_events DROP CONSTRAINT ingest_seen_events_pkey;
ALTER TABLE ingest_seen_events ADD PRIMARY KEY (reported_by, event_id);
CREATE INDEX ingest_seen_events_by_event_id ON ingest_seen_events (event_id);
