-- Indicator outcomes (docs/contracts.md, "Indicator outcomes"; services/verifier/indicators.py).
--
-- Each subject's part in every cell an indicator outcome measures (a population in a
-- year), written by the batch that evaluates the subject, so that a decision sums the
-- parts instead of reading the whole event store. member_key is
-- contract_id@version|outcome_id: the version that decides the outcome.
CREATE TABLE verifier_indicator_members (
    member_key    text    NOT NULL,
    subject       text    NOT NULL,
    cell          text    NOT NULL,   -- e.g. area:2022, comparison:2019
    numerator     boolean NOT NULL,
    self_reported boolean NOT NULL,   -- a payee reported a fact counted for this subject
    PRIMARY KEY (member_key, subject, cell)
);
CREATE INDEX verifier_indicator_members_subject ON verifier_indicator_members (subject);

-- The latest decision's inputs per indicator outcome, for the audit and to know whether
-- it was decided for the version in force: the cells' totals and the exact improvement
-- (a fraction of percentage points, e.g. 300/7).
CREATE TABLE verifier_indicator_decisions (
    outcome_key text PRIMARY KEY,
    member_key  text NOT NULL,
    cells       text NOT NULL,
    improvement text,
    decided_on  date NOT NULL
);

GRANT SELECT, INSERT, DELETE ON verifier_indicator_members TO stafet_verifier;
GRANT SELECT, INSERT, UPDATE ON verifier_indicator_decisions TO stafet_verifier;
GRANT SELECT ON verifier_indicator_members, verifier_indicator_decisions TO stafet_operator;
