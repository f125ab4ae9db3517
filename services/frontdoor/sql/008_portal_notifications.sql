-- Notifications (services/frontdoor/portal/notifications.py): the address an institution's
-- administrator registered, and one row per (institution, outcome) whose review window
-- opened: queued once (the primary key), sent, retried with a delay, or given up.
CREATE TABLE portal_notification_addresses (
    institution  text        PRIMARY KEY,
    email        text        NOT NULL CHECK (length(email) <= 254 AND email !~ '[\r\n]'),
    set_by       text        NOT NULL,
    set_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE portal_notifications (
    institution      text        NOT NULL,
    outcome_key      text        NOT NULL,
    email            text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_error       text,
    sent_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (institution, outcome_key)
);
CREATE INDEX portal_notifications_due ON portal_notifications (next_attempt_at) WHERE state = 'pending';

GRANT SELECT, INSERT, UPDATE, DELETE ON portal_notification_addresses TO stafet_frontdoor;
GRANT SELECT, INSERT, UPDATE ON portal_notifications TO stafet_frontdoor;
