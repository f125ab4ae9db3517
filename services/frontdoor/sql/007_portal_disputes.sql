-- The portal shows an institution its disputes and an operator the open ones
-- (services/frontdoor/portal/disputes.py): read-only, from the ledger's record of the
-- disputes topic (services/ledger/sql/011_disputes.sql). The front door writes disputes
-- only as signed records on that topic, never into the table.
GRANT SELECT ON ledger_disputes, ledger_dispute_states TO stafet_frontdoor;
