"""Tenants: who may act for which payer (docs/tenancy.md).

One clearing house serves many payers: municipalities, regions, funds, an investor's
vehicle. Each is a tenant, named by the same id its contracts name as `payer`, with its
own people and systems:

- `operators`: operator principals (`operator:<name>`) of this tenant;
- `contract_signers`: the operators whose keys may publish or change the tenant's
  contract versions (default: all of its operators);
- `finance`: finance principals (`finance:<name>`) that may settle and return the
  tenant's payments, and nobody else's;
- `payout_profiles`: the bank profiles its payout runs use (shared/domain/finance/banks.yaml);
- `portal_users`: the portal accounts of its own staff;
- `database_roles`: PostgreSQL login roles that read as this tenant (row-level security,
  `services/*/sql/`): they see its contracts' rows only.

A principal belongs to one tenant at most: a finance key is scoped to its payer. The
institution facts and the verifier's whole chain are shared, not per tenant; what a
tenant may *do* with money, and what its people may *read*, is.

Pure: the file is read and checked here; the services decide with `contract_refusal`
and `settlement_refusal`, and the same decisions replay on a rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from shared.domain.principals import Principal, Role
from shared.domain.yaml_model import load_yaml_model

TenantId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# PostgreSQL role names the migrations may grant (lower case, no quoting needed).
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


def topic_segment(tenant_id: str) -> str:
    """The tenant's part of its own topics' names (`<namespace>.contracts.<segment>.v1`,
    shared/platform/topics.py): its id with `.` and `:` (which Kafka topic names or the
    ACL prefixes cannot carry) as `-`. Two tenants whose segments are equal are refused."""
    return tenant_id.replace(".", "-").replace(":", "-")


class TenantKind(StrEnum):
    MUNICIPALITY = "municipality"
    REGION = "region"
    STATE = "state"
    FUND = "fund"
    INVESTOR_VEHICLE = "investor_vehicle"


class TenancyRefusal(StrEnum):
    """Reason codes (dead letters) for what a principal may not do for a payer."""

    # A contract version signed by an operator who is not a contract signer of its payer.
    FOREIGN_TENANT_CONTRACT = "foreign_tenant_contract"
    # A contract version naming a payer that is no tenant of this clearing house.
    UNKNOWN_PAYER_TENANT = "unknown_payer_tenant"
    # A new version of a contract whose earlier versions name another payer.
    CONTRACT_PAYER_CHANGED = "contract_payer_changed"
    # A settlement or return signed by a finance principal of another payer (or of none).
    FOREIGN_TENANT_SETTLEMENT = "foreign_tenant_settlement"
    # A fund's budget or savings paid into it, signed by a finance principal of another
    # payer than the record names.
    FOREIGN_TENANT_INVESTMENT = "foreign_tenant_investment"


class OperatorRefusedError(PermissionError):
    """A portal operator account that acts for no tenant and is not the clearing house's."""


class TenancyError(ValueError):
    """A tenants file that cannot be used; the message names the file and the field."""


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: TenantId
    name: str
    kind: TenantKind
    # The municipality code of the institution registry (`municipality:`), for a
    # municipality: which institutions stand in it (shared, not owned: see docs/tenancy.md).
    municipality: str = ""
    operators: tuple[Name, ...] = ()
    contract_signers: tuple[Name, ...] | None = None
    finance: tuple[Name, ...] = ()
    payout_profiles: tuple[Name, ...] = ()
    portal_users: tuple[Name, ...] = ()
    database_roles: tuple[RoleName, ...] = ()

    @model_validator(mode="after")
    def _signers_are_operators(self) -> Tenant:
        strangers = sorted(set(self.contract_signers or ()) - set(self.operators))
        if strangers:
            raise ValueError(f"{self.id}: contract_signers must be among its operators: {', '.join(strangers)}")
        return self

    def signers(self) -> tuple[str, ...]:
        return self.operators if self.contract_signers is None else self.contract_signers


class TenantsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tenants: tuple[Tenant, ...]
    # The clearing house's own operators: they run the clock for every tenant. Empty: any
    # operator may (a single-payer installation).
    clearing_house_operators: tuple[Name, ...] = ()
    # The clearing house's own portal operator accounts: with tenants, only they see and
    # decide every payer's money and disputes; an operator account that is neither theirs
    # nor a tenant's is refused the operator pages (fail closed).
    clearing_house_portal_users: tuple[Name, ...] = ()


@dataclass(frozen=True)
class Refusal:
    reason: TenancyRefusal
    message: str


class Tenancy:
    """The tenants of one clearing house, and who acts for which."""

    def __init__(self, tenants: Iterable[Tenant], clearing_house_operators: Iterable[str] = (),
                 clearing_house_portal_users: Iterable[str] = ()) -> None:
        self._by_id: dict[str, Tenant] = {}
        owner: dict[str, str] = {}  # principal or role -> tenant id
        for tenant in tenants:
            if tenant.id in self._by_id:
                raise TenancyError(f"tenant {tenant.id} is listed twice")
            self._by_id[tenant.id] = tenant
            twin = next((t for t in self._by_id if t != tenant.id and topic_segment(t) == topic_segment(tenant.id)),
                        None)
            if twin is not None:
                raise TenancyError(f"tenants {twin} and {tenant.id} would share the topics "
                                   f"of {topic_segment(tenant.id)}: rename one")
            held = [f"operator:{n}" for n in tenant.operators] + [f"finance:{n}" for n in tenant.finance] + [
                f"portal:{n}" for n in tenant.portal_users] + [f"role:{r}" for r in tenant.database_roles]
            for name in held:
                if owner.setdefault(name, tenant.id) != tenant.id:
                    raise TenancyError(f"{name} acts for {owner[name]} and {tenant.id}: a principal has one tenant")
        self._owner = owner
        self.clearing_house_operators = tuple(clearing_house_operators)
        for name in self.clearing_house_operators:
            if f"operator:{name}" in owner:
                raise TenancyError(f"operator:{name} is the clearing house's and {owner[f'operator:{name}']}'s")
        self.clearing_house_portal_users = tuple(clearing_house_portal_users)
        for name in self.clearing_house_portal_users:
            if f"portal:{name}" in owner:
                raise TenancyError(f"portal user {name} is the clearing house's and {owner[f'portal:{name}']}'s")

    @classmethod
    def from_file(cls, path: Path) -> Tenancy:
        data = load_yaml_model(path, TenantsFile, "tenants:", TenancyError, bytes_max=16 * 1024 * 1024)
        return cls(data.tenants, data.clearing_house_operators, data.clearing_house_portal_users)

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> tuple[Tenant, ...]:
        return tuple(self._by_id.values())

    def get(self, tenant_id: str) -> Tenant | None:
        return self._by_id.get(tenant_id)

    def ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def by_segment(self, segment: str) -> str | None:
        """The tenant whose topics carry `segment` (`topic_segment`), if any."""
        return next((t for t in self._by_id if topic_segment(t) == segment), None)

    def tenant_of(self, principal: Principal | str) -> str | None:
        """The tenant an operator, finance principal, portal user (`portal:<name>`) or
        database role (`role:<name>`) acts for; None for the clearing house's or a stranger."""
        return self._owner.get(str(principal))

    def portal_scope(self, username: str, institution: str) -> str | None:
        """The payer a portal operator account acts for: the tenant whose `portal_users`
        name it, else its institution when that is a tenant; None (every payer) only for
        an account named in `clearing_house_portal_users`. Any other account acts for
        nobody: `OperatorRefusedError` (fail closed, never "every payer" by default)."""
        listed = self.tenant_of(f"portal:{username}")
        if listed is not None:
            return listed
        if username in self.clearing_house_portal_users:
            return None
        if institution in self._by_id:
            return institution
        raise OperatorRefusedError(f"the portal operator account {username} is neither a tenant's nor named in"
                                   " clearing_house_portal_users: it may not see any payer's money")

    def principals(self) -> tuple[str, ...]:
        """Every operator and finance principal named (their development keys are
        trusted in development mode: shared/platform/trust.py)."""
        named = [p for p in self._owner if p.startswith(("operator:", "finance:"))]
        return tuple(dict.fromkeys([*named, *(f"operator:{n}" for n in self.clearing_house_operators)]))

    def database_roles(self) -> dict[str, str]:
        """PostgreSQL role -> the tenant it reads as."""
        return {name.removeprefix("role:"): tenant for name, tenant in self._owner.items() if name.startswith("role:")}

    def contract_refusal(self, signer: Principal, payer: str, earlier_payer: str | None = None) -> Refusal | None:
        """Why `signer` may not publish this version of a contract paid by `payer` (whose
        earlier versions, if any, name `earlier_payer`), or None."""
        if earlier_payer is not None and earlier_payer != payer:
            return Refusal(TenancyRefusal.CONTRACT_PAYER_CHANGED,
                           f"the contract's earlier versions are paid by {earlier_payer}, this one by {payer}:"
                           " a contract keeps its payer (a new contract id for a new payer)")
        tenant = self._by_id.get(payer)
        if tenant is None:
            return Refusal(TenancyRefusal.UNKNOWN_PAYER_TENANT, f"payer {payer} is no tenant of this clearing house")
        if signer.role != Role.OPERATOR or signer.name not in tenant.signers():
            return Refusal(TenancyRefusal.FOREIGN_TENANT_CONTRACT,
                           f"signed by {signer}, who is not a contract signer of {payer}")
        return None

    def settlement_refusal(self, settled_by: str | None, payer: str) -> Refusal | None:
        """Why a settlement or return signed by `settled_by` may not settle a payment of
        `payer`, or None. `settled_by` None: forwarded onto the journal before the ledger
        named the signer (it always does now), so a rebuild decides as the ledger did then."""
        if settled_by is None:
            return None
        tenant = self._by_id.get(payer)
        if tenant is not None and settled_by.startswith("finance:") \
                and settled_by.removeprefix("finance:") in tenant.finance:
            return None
        return Refusal(TenancyRefusal.FOREIGN_TENANT_SETTLEMENT,
                       f"settled by {settled_by}, which is not a finance"
                       f" principal of the payer {payer}")

    def may_tick(self, signer: Principal) -> bool:
        """Whether an operator may move the clearing house's clock (every tenant's)."""
        return signer.role == Role.OPERATOR and (
            not self.clearing_house_operators or signer.name in self.clearing_house_operators)
