-- Least privilege (docs/security.md): the ledger runs as stafet_ledger, which may read
-- and append entries and lines and move the chain head, and nothing else: no UPDATE,
-- DELETE or TRUNCATE on entries or lines, and, not owning the tables, no ALTER TABLE and
-- no DISABLE TRIGGER. Operators' read-only commands (balances, statements, verify,
-- the report, exports) run as stafet_operator. Rebuilding is a maintenance job run as the owner.
GRANT SELECT, INSERT ON ledger_entries, ledger_lines TO stafet_ledger;
GRANT SELECT, UPDATE (sequence, entry_hash) ON ledger_chain_head TO stafet_ledger;

GRANT SELECT ON ledger_entries, ledger_lines, ledger_chain_head, payout_exports, payout_lines
    TO stafet_operator;

-- Finance (`stafet finance payout` and `import`): reads the ledger to find what is pending
-- and records each payout export and line once (append-only, like the ledger).
GRANT SELECT ON ledger_entries, ledger_lines TO stafet_finance;
GRANT SELECT, INSERT ON payout_exports, payout_lines TO stafet_finance;
