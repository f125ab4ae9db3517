-- Re-evaluating a subject reads its earlier decisions by subject: index them so.
CREATE INDEX verifier_outcomes_subject ON verifier_outcomes (subject);
