-- An event id belongs to the institution that reported it (issue 25): two institutions'
-- events with the same id are two events. The reporter is taken from the stored
-- transition for the rows already there.
ALTER TABLE verifier_events ADD COLUMN reported_by text;
UPDATE verifier_events SET reported_by = transition::json ->> 'reported_by';
ALTER TABLE verifier_events ALTER COLUMN reported_by SET NOT NULL;
ALTER TABLE verifier_events DROP CONSTRAINT verifier_events_event_id_key;
ALTER TABLE verifier_events ADD CONSTRAINT verifier_events_reporter_event_id_key UNIQUE (reported_by, event_id);
