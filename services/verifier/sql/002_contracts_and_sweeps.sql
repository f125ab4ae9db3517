-- Contract versions the verifier has seen (from the compacted contracts topic or from
-- files), kept so that a restart knows them before it consumes a single transition.
CREATE TABLE verifier_contracts (
    contract_id text    NOT NULL,
    version     integer NOT NULL,
    contract    text    NOT NULL,   -- the Contract as JSON
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contract_id, version)
);

-- Timers are drained in bounded slices (a new contract schedules every subject).
CREATE INDEX verifier_timers_due ON verifier_timers (due_on, subject);
