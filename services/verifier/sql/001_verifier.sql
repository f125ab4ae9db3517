-- The verifier's event store and its effects.
--
-- verifier_events is the source of truth: each subject's stream of trusted transitions,
-- append-only, (subject, version) unique and event_id unique so a redelivered or
-- duplicated event is a no-op. Everything else is derived state written in the same
-- transaction as the events that caused it, including the outbox the relay publishes.

CREATE TABLE verifier_subjects (
    subject     text    PRIMARY KEY,           -- a pseudonym
    birth_date  date    NOT NULL,
    version     integer NOT NULL CHECK (version >= 0)
);

CREATE TABLE verifier_events (
    subject     text    NOT NULL REFERENCES verifier_subjects (subject),
    version     integer NOT NULL CHECK (version >= 1),
    event_id    text    NOT NULL UNIQUE,
    occurred_on date    NOT NULL,
    transition  text    NOT NULL,              -- the Transition as JSON, as consumed
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);

-- Every instruction the verifier ever issued (payments and clawbacks), for reconciling.
CREATE TABLE verifier_payments (
    payment_id  text    PRIMARY KEY,
    subject     text    NOT NULL,
    contract_id text    NOT NULL,
    instruction text    NOT NULL
);
CREATE INDEX verifier_payments_subject ON verifier_payments (subject, contract_id);

-- The latest decision per outcome (contract, version, outcome, subject, trigger).
CREATE TABLE verifier_outcomes (
    outcome_key text    PRIMARY KEY,
    subject     text    NOT NULL,
    contract_id text    NOT NULL,
    status      text    NOT NULL,
    reason      text,
    owed_minor  bigint  NOT NULL,
    decision    text    NOT NULL
);
CREATE INDEX verifier_outcomes_contract ON verifier_outcomes (contract_id, status);

-- Contract-wide cap usage (total and per year), one row per contract version.
CREATE TABLE verifier_cap_state (
    contract_id      text    NOT NULL,
    contract_version integer NOT NULL,
    state            text    NOT NULL,
    PRIMARY KEY (contract_id, contract_version)
);

-- Outcomes waiting for time to pass (sustainment): re-evaluate the subject when the
-- verifier's clock reaches due_on.
CREATE TABLE verifier_timers (
    subject text NOT NULL,
    due_on  date NOT NULL,
    PRIMARY KEY (subject, due_on)
);

-- The verifier's clock: event time, the latest occurred_on (or clock tick) seen.
CREATE TABLE verifier_clock (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    today    date    NOT NULL
);
INSERT INTO verifier_clock (today) VALUES (DATE '1900-01-01');

-- Records to publish; the relay marks them published after the broker acknowledged.
CREATE TABLE verifier_outbox (
    sequence     bigserial PRIMARY KEY,
    topic        text   NOT NULL,
    key          text   NOT NULL,
    payload      text   NOT NULL,
    published_at timestamptz
);
CREATE INDEX verifier_outbox_unpublished ON verifier_outbox (sequence) WHERE published_at IS NULL;
