"""The clearing house's tenants (shared/domain/tenancy.py), from TENANTS_FILE."""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from shared.domain.tenancy import Tenancy, TenancyError
from shared.platform.settings import Settings


class TenantsConfigurationError(RuntimeError):
    """TENANTS_FILE is set but cannot be used; the message says why."""


def load_tenancy(settings: Settings) -> Tenancy | None:
    """The tenants, or None when TENANTS_FILE is unset (one payer's installation)."""
    if settings.tenants_file is None:
        return None
    try:
        return Tenancy.from_file(settings.tenants_file)
    except TenancyError as error:
        raise TenantsConfigurationError(f"TENANTS_FILE: {error}") from None


# The tables a tenant's database roles read, each with row-level security that shows
# only the tenant's rows (services/verifier/sql/013_tenant_rows.sql,
# services/ledger/sql/012_tenant_rows.sql). Nothing else is granted to them.
TENANT_TABLES = (
    "verifier_contracts", "verifier_outcomes", "verifier_payments", "verifier_subjects", "verifier_events",
    "ledger_entries", "ledger_lines", "ledger_entry_sources",
    "payout_exports", "payout_lines", "payout_run_states", "payout_rejections", "payout_status_reports",
)


class TenantRoleError(RuntimeError):
    """A tenant's database role cannot be set up; the message says which and why."""


# Whether a role is (or acts as) one of the clearing house's own: a superuser, a role that
# bypasses row-level security or creates roles, the owner running this, a role that owns a
# table or may change one, or one the `clearing_house` policies let read every tenant's
# rows (directly or as a member). Such a role must never be mapped to a tenant (the file
# naming `stafet_ledger` by mistake): mapping it reads nothing less (the policies are
# permissive), and unlisting it later would revoke the service's own SELECT.
CLEARING_HOUSE_ROLE = """
SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole OR r.rolname = current_user
    OR EXISTS (SELECT 1 FROM pg_policy p, unnest(p.polroles) AS granted(oid)
                WHERE p.polname = 'clearing_house' AND granted.oid <> 0 AND pg_has_role(r.oid, granted.oid, 'MEMBER'))
    OR EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                  AND (pg_has_role(r.oid, c.relowner, 'MEMBER')
                       OR has_table_privilege(r.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')))
  FROM pg_roles r WHERE r.rolname = $1
"""


async def grant_tenant_roles(owner_url: str, roles: Mapping[str, str], passwords: Mapping[str, str]) -> list[str]:
    """As the owner: for each role -> tenant, create the login role if it is missing and
    a password is given (the owner needs CREATEROLE for that; else a database
    administrator creates it first), grant it SELECT on TENANT_TABLES and map it to its
    tenant; unmap roles no longer listed and revoke their grants. One transaction.
    Returns what was done, one line each."""
    done: list[str] = []
    connection = await asyncpg.connect(owner_url)
    try:
        async with connection.transaction():
            existing = {r["role_name"]: r["tenant"] for r in await connection.fetch(
                "SELECT role_name, tenant FROM tenant_db_roles")}
            tables = ", ".join(TENANT_TABLES)
            for role in sorted(set(existing) - set(roles)):
                await connection.execute("DELETE FROM tenant_db_roles WHERE role_name = $1", role)
                if await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                    await connection.execute(f'REVOKE SELECT ON {tables} FROM "{role}"')
                done.append(f"{role}: no longer a tenant's role, unmapped and revoked")
            for role, tenant in sorted(roles.items()):
                if await connection.fetchval(CLEARING_HOUSE_ROLE, role):
                    raise TenantRoleError(f"role {role} is one of the clearing house's own (it writes, owns, bypasses "
                                          "row-level security or reads every tenant's rows): a tenant's database "
                                          "role must be a login role of its own that only reads (nothing changed)")
                if not await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                    password = passwords.get(role)
                    if password is None:
                        raise TenantRoleError(f"role {role} does not exist: create it as the database's"
                                              " administrator, or give its password (--password-dir)")
                    literal = await connection.fetchval("SELECT quote_literal($1::text)", password)
                    await connection.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD {literal}')
                    done.append(f"{role}: created")
                await connection.execute(f'GRANT SELECT ON {tables} TO "{role}"')
                await connection.execute(
                    "INSERT INTO tenant_db_roles (role_name, tenant) VALUES ($1, $2)"
                    " ON CONFLICT (role_name) DO UPDATE SET tenant = excluded.tenant", role, tenant)
                done.append(f"{role}: reads as {tenant}")
    finally:
        await connection.close()
    return done
