-- An event id belongs to the institution that reported it (issue 25): another
-- institution using the same id is another event, never a duplicate or a conflict of
-- this one. And the same id with another subject is a conflict, not a duplicate: the
-- subject is remembered as a keyed fingerprint (HMAC-like: SHA-256 of the front door's
-- Ed25519 signature over the subject, prefixed by the signing key's id), which nobody
-- without the front door's key can test CPR numbers against. NULL where it cannot be
-- compared: a subject sent already sealed, and rows from before this migration.
ALTER TABLE frontdoor_events DROP CONSTRAINT frontdoor_events_pkey;
ALTER TABLE frontdoor_events ADD PRIMARY KEY (institution, event_id);
ALTER TABLE frontdoor_events ADD COLUMN subject_fingerprint text;
