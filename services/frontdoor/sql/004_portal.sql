-- The institutions' portal (services/frontdoor/portal/): sessions and failed log-ins,
-- and what the front door may read to show an institution its statement.
--
-- A session row holds the SHA-256 of the cookie's value (never the value), the user, the
-- institution and the role it acts for, and the session's CSRF token. Failed log-ins are
-- kept per user name (known or not) for the lock-out; both tables are pruned as they are
-- written (expired sessions, failures older than an hour).
CREATE TABLE portal_sessions (
    session_hash  char(64)    PRIMARY KEY,
    username      text        NOT NULL CHECK (length(username) <= 64),
    institution   text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'administrator')),
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

CREATE TABLE portal_login_failures (
    username   text        NOT NULL CHECK (length(username) <= 64),
    failed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX portal_login_failures_user ON portal_login_failures (username, failed_at);

GRANT SELECT, INSERT, DELETE ON portal_sessions, portal_login_failures TO stafet_frontdoor;

-- The statement: read-only, and the portal's queries always name the logged-in user's
-- institution (services/frontdoor/portal/statement.py). The ledger's entries and payout
-- records, the verifier's decisions, the contracts, event time and the subjects' facts
-- (an institution sees only its own stays of a child and one "other institutions" sum).
GRANT SELECT ON ledger_entries, payout_lines, payout_exports TO stafet_frontdoor;
GRANT SELECT ON verifier_outcomes, verifier_payments, verifier_events, verifier_contracts, verifier_clocks
    TO stafet_frontdoor;
