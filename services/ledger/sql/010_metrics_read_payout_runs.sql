-- The ledger's /metrics counts payout runs by format and says when the last one was
-- recorded (services/ledger/metrics.py, the Grafana dashboard's "payout runs"). It may read
-- those two columns and nothing else of the runs: not their files, not their lines'
-- payees and accounts, which stay finance's and operators' to read.
GRANT SELECT (format, created_at) ON payout_exports TO stafet_ledger;
