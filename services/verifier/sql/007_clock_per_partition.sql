-- Scale-out (issue 16): every batch used to update the one verifier_clock row, so two
-- replicas serialised on it. Each batch now moves only the clocks of the transitions
-- partitions it consumed (a partition has one consumer at a time, so replicas never
-- write the same row), and event time is the latest of them: the same meaning as before
-- (the latest occurred_on or clock tick seen), read without a lock.
-- partition -1 holds what does not come from a partition (the carried-over clock,
-- in-process replays such as `make profile`).
CREATE TABLE verifier_clocks (
    partition integer PRIMARY KEY CHECK (partition >= -1),
    today     date    NOT NULL
);
INSERT INTO verifier_clocks (partition, today) SELECT -1, today FROM verifier_clock;
DROP TABLE verifier_clock;

GRANT SELECT, INSERT, UPDATE ON verifier_clocks TO stafet_verifier;
GRANT SELECT ON verifier_clocks TO stafet_operator;
