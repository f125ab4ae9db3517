-- Budgets without reading every claim (issue 16): each claim keeps the grant it was last
-- given, and per budget and day the sums of what was requested and granted, so a batch
-- re-grants only from its first changed claim on (services/verifier/budgets.py).
-- Claims stored before this have no grant yet (NULL): the first batch that touches their
-- budget grants it over every claim once, as the verifier did before, and fills both in.
ALTER TABLE verifier_budget_requests ADD COLUMN granted_minor bigint CHECK (granted_minor >= 0);
CREATE INDEX verifier_budget_requests_rank ON verifier_budget_requests (budget, occurred_on, outcome_key)
    INCLUDE (granted_minor, requested_minor);
CREATE INDEX verifier_budget_requests_ungranted ON verifier_budget_requests (budget) WHERE granted_minor IS NULL;

-- No CHECK (>= 0) on the sums: they are moved by adding deltas (INSERT ... ON CONFLICT
-- DO UPDATE), and PostgreSQL checks the proposed row, a negative delta, before the conflict.
CREATE TABLE verifier_budget_days (
    budget          text   NOT NULL,
    day             date   NOT NULL,
    requested_minor bigint NOT NULL,
    granted_minor   bigint NOT NULL,
    claims          integer NOT NULL,
    PRIMARY KEY (budget, day)
);

-- A claim's grant moves when another claim ranks before it (UPDATE).
GRANT SELECT, INSERT, UPDATE, DELETE ON verifier_budget_requests TO stafet_verifier;
GRANT SELECT, INSERT, UPDATE, DELETE ON verifier_budget_days TO stafet_verifier;
GRANT SELECT ON verifier_budget_days TO stafet_operator;
