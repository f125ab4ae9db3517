-- The portal's operator role (services/frontdoor/portal/operator.py): a session may now act
-- as an operator, who reads the overview of every contract (sums only) and no statement.
ALTER TABLE portal_sessions DROP CONSTRAINT portal_sessions_role_check;
ALTER TABLE portal_sessions ADD CONSTRAINT portal_sessions_role_check
    CHECK (role IN ('viewer', 'administrator', 'operator'));
