"""`stafet db tenants` (shared/platform/tenants.py) maps only a tenant's own reading roles:
a tenants file naming one of the clearing house's roles (a service's, the owner) is refused
and changes nothing, on a real PostgreSQL (one fresh database, no Kafka)."""

from __future__ import annotations

import asyncpg
import pytest

from shared.platform.credentials import db_role
from shared.platform.tenants import TenantRoleError, grant_tenant_roles

pytestmark = pytest.mark.e2e


async def _mapped(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        return {r["role_name"]: r["tenant"] for r in await connection.fetch("SELECT role_name, tenant FROM tenant_db_roles")}
    finally:
        await connection.close()


async def _reads(url: str, role: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval("SELECT has_table_privilege($1, 'ledger_entries', 'SELECT')", role))
    finally:
        await connection.close()


async def test_a_clearing_house_role_named_as_a_tenants_is_refused_and_nothing_changes(database_url: str) -> None:
    for role in ("stafet_ledger", "stafet_verifier", "stafet_operator", db_role("owner")):
        with pytest.raises(TenantRoleError, match=f"role {role} is one of the clearing house's own"):
            await grant_tenant_roles(database_url, {"stafet_tenant_a": "a", role: "a"}, {"stafet_tenant_a": "pw-a"})
        assert await _mapped(database_url) == {}, role  # one transaction: the good role is not mapped either
    assert await _reads(database_url, "stafet_ledger")
    # A reading role of the tenant's own is mapped as before.
    done = await grant_tenant_roles(database_url, {"stafet_tenant_a": "a"}, {"stafet_tenant_a": "pw-a"})
    assert "stafet_tenant_a: reads as a" in done
    assert await _mapped(database_url) == {"stafet_tenant_a": "a"}
