-- The ledger: double-entry, append-only, hash-chained.
--
-- One row in ledger_entries per payment instruction, clawback or settlement; its lines
-- in ledger_lines. Every entry's debits equal its credits (checked by a deferred
-- constraint trigger at commit, in addition to the code), and no entry or line can be
-- updated or deleted (triggers). Corrections are new, reversing entries.

CREATE TABLE ledger_entries (
    sequence        bigint      PRIMARY KEY,          -- position in the hash chain, gapless
    entry_id        text        NOT NULL UNIQUE,      -- payment id / clawback id / settlement id
    kind            text        NOT NULL CHECK (kind IN ('payment', 'clawback', 'settled', 'failed')),
    payment_id      text        NOT NULL,
    reverses_payment_id text,
    contract_id     text        NOT NULL,
    contract_version integer    NOT NULL,
    outcome_id      text        NOT NULL,
    subject         text        NOT NULL,             -- a pseudonym, never a CPR number
    payer           text        NOT NULL,
    payee           text        NOT NULL,
    payee_role      text        NOT NULL CHECK (payee_role IN ('institution', 'fallback')),
    currency        char(3)     NOT NULL,
    amount_minor    bigint      NOT NULL CHECK (amount_minor > 0),
    occurred_on     date        NOT NULL,
    content_hash    char(64)    NOT NULL,
    previous_hash   char(64)    NOT NULL,
    entry_hash      char(64)    NOT NULL UNIQUE,
    recorded_at     timestamptz NOT NULL DEFAULT now()  -- not hashed: differs on a rebuild
);
CREATE INDEX ledger_entries_payee ON ledger_entries (payee, contract_id);

CREATE TABLE ledger_lines (
    sequence      bigint  NOT NULL REFERENCES ledger_entries (sequence),
    line          smallint NOT NULL,
    account       text    NOT NULL,
    debit_minor   bigint  NOT NULL DEFAULT 0 CHECK (debit_minor >= 0),
    credit_minor  bigint  NOT NULL DEFAULT 0 CHECK (credit_minor >= 0),
    currency      char(3) NOT NULL,
    PRIMARY KEY (sequence, line),
    CHECK ((debit_minor = 0) <> (credit_minor = 0))
);
CREATE INDEX ledger_lines_account ON ledger_lines (account);

-- The head of the chain: one row, locked FOR UPDATE by each writing transaction so that
-- concurrent projectors extend the chain one at a time.
CREATE TABLE ledger_chain_head (
    only_row      boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    sequence      bigint  NOT NULL,
    entry_hash    char(64) NOT NULL
);
INSERT INTO ledger_chain_head (sequence, entry_hash) VALUES (0, repeat('0', 64));

CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_lines_append_only BEFORE UPDATE OR DELETE ON ledger_lines
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    debits bigint; credits bigint; currencies integer;
BEGIN
    SELECT coalesce(sum(debit_minor), 0), coalesce(sum(credit_minor), 0), count(DISTINCT currency)
      INTO debits, credits, currencies
      FROM ledger_lines WHERE sequence = NEW.sequence;
    IF debits <> credits OR debits = 0 THEN
        RAISE EXCEPTION 'ledger entry % is not balanced (debits %, credits %)',
            NEW.sequence, debits, credits;
    END IF;
    IF currencies <> 1 THEN
        RAISE EXCEPTION 'ledger entry % mixes currencies', NEW.sequence;
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
