-- Disputes (issue 29; shared/domain/disputes.py): every record of the disputes topic the
-- ledger admitted, appended in the order it read them. A dispute's state is its latest
-- record's; while it is open (or a correction is requested) a payout run leaves out every
-- payment of its outcome (services/ledger/payouts.py), so the money waits past the review
-- window until an operator decides. The instructions themselves are not touched.
CREATE TABLE ledger_disputes (
    n             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    record_id     char(32)    NOT NULL UNIQUE,  -- the dispute's id, or a decision's
    dispute_id    char(32)    NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('dispute_opened', 'dispute_resolved')),
    outcome_key   text        NOT NULL,         -- contract|outcome|subject pseudonym|trigger
    institution   text        NOT NULL,
    state         text        NOT NULL CHECK (state IN ('open', 'correction_requested', 'upheld', 'rejected')),
    record        jsonb       NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_disputes_outcome ON ledger_disputes (outcome_key);
CREATE INDEX ledger_disputes_dispute ON ledger_disputes (dispute_id, n);
CREATE TRIGGER ledger_disputes_append_only BEFORE UPDATE OR DELETE ON ledger_disputes
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

-- Each dispute as it stands now, with when it was opened.
CREATE VIEW ledger_dispute_states AS
SELECT latest.dispute_id, latest.outcome_key, latest.institution, latest.state, latest.record AS latest_record,
       opened.record AS opened_record, opened.recorded_at AS opened_at, latest.recorded_at AS changed_at
  FROM (SELECT DISTINCT ON (dispute_id) * FROM ledger_disputes ORDER BY dispute_id, n DESC) latest
  JOIN ledger_disputes opened ON opened.dispute_id = latest.dispute_id AND opened.kind = 'dispute_opened';

GRANT SELECT, INSERT ON ledger_disputes TO stafet_ledger;
GRANT SELECT ON ledger_dispute_states TO stafet_ledger;
-- `stafet finance payout` leaves out what a dispute holds; operators' commands read them.
GRANT SELECT ON ledger_disputes, ledger_dispute_states TO stafet_finance, stafet_operator;
