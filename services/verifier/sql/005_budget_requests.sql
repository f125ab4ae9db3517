-- Contract-wide budgets (total and per-period caps) are decided by rank, not by the
-- order subjects happened to be processed in: every verified outcome's claim is kept
-- here, and the granted amounts are a pure function of all claims in a budget
-- (shared/domain/contracts/payments.py: grant_budget; docs/contracts.md, "Caps and budgets").
-- A budget is a contract id (all versions share it) or contract_id@vN (a version with
-- `budget: per_version`).
CREATE TABLE verifier_budget_requests (
    budget            text   NOT NULL,
    outcome_key       text   NOT NULL,
    subject           text   NOT NULL,
    occurred_on       date   NOT NULL,
    requested_minor   bigint NOT NULL CHECK (requested_minor > 0),
    total_cap_minor   bigint,
    period_cap_minor  bigint,
    PRIMARY KEY (budget, outcome_key)
);
CREATE INDEX verifier_budget_requests_subject ON verifier_budget_requests (subject);
-- verifier_cap_state (first come, first served per version) is no longer written;
-- it is left in place, empty, so that grants written against it keep applying.
DELETE FROM verifier_cap_state;
