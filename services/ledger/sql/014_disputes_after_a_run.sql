-- A dispute kept too late (issue 29, review): the front door checks the review window
-- against the verifier's frontier, but the ledger reads the disputes topic in a group of
-- its own, so an outcome's payment may be final and in a payout run before its dispute is
-- kept. The dispute is kept all the same (it still holds what is not paid yet), with the
-- live run that already held a payment of the outcome (services/ledger/disputes.py,
-- reason `already_in_payout_run`); the operator's queue shows it, so that the run can be
-- voided before the bank pays it, or the money recovered.
ALTER TABLE ledger_disputes ADD COLUMN in_payout_run text;  -- on a dispute_opened record only

CREATE OR REPLACE VIEW ledger_dispute_states AS
SELECT latest.dispute_id, latest.outcome_key, latest.institution, latest.state, latest.record AS latest_record,
       opened.record AS opened_record, opened.recorded_at AS opened_at, latest.recorded_at AS changed_at,
       opened.in_payout_run
  FROM (SELECT DISTINCT ON (dispute_id) * FROM ledger_disputes ORDER BY dispute_id, n DESC) latest
  JOIN ledger_disputes opened ON opened.dispute_id = latest.dispute_id AND opened.kind = 'dispute_opened';

-- To tell whether a payment is out in a live run (services/ledger/payouts.py,
-- `_out_in_live_runs`), the ledger reads which run holds which payment and the runs'
-- states: not the runs' files, nor their lines' payees and accounts.
GRANT SELECT (export_id, payment_id) ON payout_lines TO stafet_ledger;
GRANT SELECT (export_id) ON payout_exports TO stafet_ledger;
GRANT SELECT (run_id, n, state) ON payout_run_states TO stafet_ledger;
GRANT SELECT (run_id, payment_id) ON payout_rejections TO stafet_ledger;
