-- Least privilege (docs/security.md): the verifier runs as stafet_verifier with exactly
-- the statements its store issues; operators' read-only commands run as stafet_operator.
-- Rebuilding (TRUNCATE) is a maintenance job run as the owner, like a migration.
GRANT SELECT, INSERT, UPDATE ON verifier_subjects TO stafet_verifier;
GRANT SELECT, INSERT ON verifier_events, verifier_payments, verifier_contracts TO stafet_verifier;
GRANT SELECT, INSERT, UPDATE ON verifier_outcomes, verifier_cap_state TO stafet_verifier;
-- A subject's budget requests are replaced as a whole (DELETE, then INSERT).
GRANT SELECT, INSERT, DELETE ON verifier_budget_requests TO stafet_verifier;
GRANT SELECT, UPDATE ON verifier_clock TO stafet_verifier;
-- Timers are claimed with SELECT ... FOR UPDATE SKIP LOCKED, which needs UPDATE.
GRANT SELECT, INSERT, UPDATE, DELETE ON verifier_timers TO stafet_verifier;
GRANT SELECT, INSERT, DELETE ON verifier_outbox TO stafet_verifier;
GRANT USAGE ON SEQUENCE verifier_outbox_sequence_seq TO stafet_verifier;

GRANT SELECT ON verifier_subjects, verifier_events, verifier_payments, verifier_contracts,
    verifier_outcomes, verifier_cap_state, verifier_budget_requests, verifier_clock, verifier_timers,
    verifier_outbox TO stafet_operator;
