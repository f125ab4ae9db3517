-- Tenants (docs/tenancy.md): row-level security for the roles that read as one payer.
--
-- A tenant's database roles (TENANTS_FILE `database_roles`, granted by `stafet db tenants`)
-- are login roles of their own, mapped here to their tenant. The tenant is the login's
-- (session_user): per connection, and no SET ROLE or SET of a setting widens it. The
-- clearing house's roles (the services, operators, finance) keep seeing every row
-- through a policy of their own; any other role sees no row of these tables.
CREATE TABLE tenant_db_roles (
    role_name text PRIMARY KEY,
    tenant    text NOT NULL
);
GRANT SELECT ON tenant_db_roles TO PUBLIC;  -- who reads as whom is no secret; only the owner writes it

-- The tenant this connection reads as, or NULL. Schema-qualified and with a fixed
-- search_path, so that no temporary table of the caller's can stand in for the mapping.
CREATE FUNCTION stafet_tenant() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT tenant FROM public.tenant_db_roles WHERE role_name = session_user $$;

-- The verifier's tables a tenant reads: its contracts (their payer is the tenant), the
-- outcomes and instructions of those contracts, and children only as far as those
-- contracts concern them (a subject with an outcome under one of them other than "not
-- eligible": its stays and facts, across every border, but no other child's).
ALTER TABLE verifier_contracts ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON verifier_contracts
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON verifier_contracts FOR SELECT
    USING ((contract::jsonb ->> 'payer') = (SELECT stafet_tenant()));

ALTER TABLE verifier_outcomes ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON verifier_outcomes
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
-- A child its contract found not eligible (another municipality's, say) is no concern
-- of the tenant's: that decision is not shown either.
CREATE POLICY tenant_rows ON verifier_outcomes FOR SELECT
    USING (contract_id IN (SELECT contract_id FROM verifier_contracts) AND reason IS DISTINCT FROM 'not_eligible');

ALTER TABLE verifier_payments ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON verifier_payments
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON verifier_payments FOR SELECT
    USING (contract_id IN (SELECT contract_id FROM verifier_contracts));

ALTER TABLE verifier_subjects ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON verifier_subjects
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON verifier_subjects FOR SELECT
    USING (subject IN (SELECT subject FROM verifier_outcomes));

ALTER TABLE verifier_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY clearing_house ON verifier_events
    TO stafet_ingest, stafet_verifier, stafet_ledger, stafet_frontdoor, stafet_finance, stafet_operator
    USING (true) WITH CHECK (true);
CREATE POLICY tenant_rows ON verifier_events FOR SELECT
    USING (subject IN (SELECT subject FROM verifier_outcomes));
