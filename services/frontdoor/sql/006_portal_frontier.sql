-- The portal counts the days left in an outcome's review window from the verifier's
-- finality frontier (issue 26, services/verifier/sql/011_watermarks_and_finality.sql):
-- an outcome is final once final_through reaches its decision date.
GRANT SELECT ON verifier_frontier TO stafet_frontdoor;
