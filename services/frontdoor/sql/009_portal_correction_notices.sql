-- Notifications of a second kind (services/frontdoor/portal/notifications.py): besides a
-- review window that opened, a correction an operator requested of the institution (the
-- source of a disputed fact), one per request (`about`: the decision's id). Rows get an
-- id of their own, by which a cycle marks what it sent.
ALTER TABLE portal_notifications
    ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY,
    ADD COLUMN kind text NOT NULL DEFAULT 'window_opened' CHECK (kind IN ('window_opened', 'correction_requested')),
    ADD COLUMN about text NOT NULL DEFAULT '';
ALTER TABLE portal_notifications DROP CONSTRAINT portal_notifications_pkey;
ALTER TABLE portal_notifications ADD PRIMARY KEY (institution, outcome_key, kind, about);
CREATE UNIQUE INDEX portal_notifications_id ON portal_notifications (id);
