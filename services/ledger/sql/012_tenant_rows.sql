-- Tenants (docs/tenancy.md): row-level security on the ledger's tables a tenant's
-- database roles read (the mapping and stafet_tenant(): services/verifier/sql/013_tenant_rows.sql).
-- A tenant sees the entries it pays (payer), their lines and signed sources, and the
-- payout runs of its payments; the clearing house's roles every row, as before.
ALTER TABLE ledger_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON ledger_entries
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON ledger_entries FOR SELECT
    USING (payer = (SELECT stafet_tenant()));

ALTER TABLE ledger_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON ledger_lines
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON ledger_lines FOR SELECT
    USING (sequence IN (SELECT sequence FROM ledger_entries));

ALTER TABLE ledger_entry_sources ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON ledger_entry_sources
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON ledger_entry_sources FOR SELECT
    USING (sequence IN (SELECT sequence FROM ledger_entries));

ALTER TABLE payout_lines ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON payout_lines
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON payout_lines FOR SELECT
    USING (payer = (SELECT stafet_tenant()));

ALTER TABLE payout_exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON payout_exports
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON payout_exports FOR SELECT
    USING (export_id IN (SELECT export_id FROM payout_lines));

ALTER TABLE payout_run_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON payout_run_states
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON payout_run_states FOR SELECT
    USING (run_id IN (SELECT export_id FROM payout_lines));

ALTER TABLE payout_rejections ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON payout_rejections
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON payout_rejections FOR SELECT
    USING (run_id IN (SELECT export_id FROM payout_lines));

ALTER TABLE payout_status_reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON payout_status_reports
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON payout_status_reports FOR SELECT
    USING (run_id IN (SELECT export_id FROM payout_lines));
