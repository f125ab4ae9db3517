-- Money moves once (issue 26, docs/contracts.md "Finality"): event time is a watermark per
-- transitions partition, not the latest date any partition has seen, and an outcome is
-- decided once, on the facts that were in when the watermark passed its decision date.
--
-- known_after: the watermark of the event's partition when the event arrived (1900-01-01
-- before any). The facts "in" at frontier day F are those with known_after < F: the
-- ones that arrived before their partition's watermark reached F. Events stored before
-- this migration count as in from the start.
ALTER TABLE verifier_events ADD COLUMN known_after date NOT NULL DEFAULT DATE '1900-01-01';
CREATE INDEX verifier_events_known_after ON verifier_events (known_after);

-- The finality frontier: outcomes whose decision date is on or before final_through are
-- final. It moves forward (under an exclusive advisory lock) towards the global
-- watermark, the least of the partitions' watermarks, never past a day on which a
-- partition's facts became known (each such step is its own view), and never past a
-- day whose timers it has not swept. An upgraded installation starts it at the latest
-- clock it had, so that what it decided stays decided.
CREATE TABLE verifier_frontier (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    final_through date    NOT NULL,
    watermark     date    NOT NULL
);
INSERT INTO verifier_frontier (final_through, watermark)
    SELECT coalesce(max(today), DATE '1900-01-01'), coalesce(max(today), DATE '1900-01-01') FROM verifier_clocks;

-- Why each instruction was issued: `final` (an outcome decided when the watermark passed
-- its decision date), `correction` (a fact known after that: cause_event_id names it),
-- `recheck` (no new fact: a budget grant moved or a contract version changed the money).
ALTER TABLE verifier_payments ADD COLUMN reason text NOT NULL DEFAULT 'final'
    CHECK (reason IN ('final', 'correction', 'recheck'));
ALTER TABLE verifier_payments ADD COLUMN cause_event_id text;

GRANT SELECT, UPDATE ON verifier_frontier TO stafet_verifier;
GRANT SELECT ON verifier_frontier TO stafet_operator;
