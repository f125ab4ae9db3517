"""The clearing house's tenants (shared/domain/tenancy.py), from TENANTS_FILE."""

from __future__ import annotations

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
