"""Who may log in to the portal: institution users, their password hashes and roles.

Accounts live in a YAML file beside the front door's token store, in the same spirit:
only hashes, several per institution, made by a command (`stafet frontdoor user`):

    users:
      alsskolen-admin: {institution: alsskolen, role: administrator, password: "$argon2id$v=19$..."}

Passwords are hashed with Argon2id through argon2-cffi (its RFC 9106 low-memory profile),
never with a scheme of our own. In development mode every registered institution also has
a well-known administrator, named after the institution, and a viewer (`<id>-viewer`),
whose passwords are `development_password` of their names (so `make demo` can print a
log-in), and the first municipality a user `operator`;
production has only the file's users.

Lock-out: after `FAILURES_MAX` failed log-ins for one user name within `FAILURE_WINDOW`,
that name is refused, right password or not, until `LOCK_DURATION` after the last failure.
The decision is a pure function of the failures' times (`locked_until`); the failures are
kept in PostgreSQL (sessions.py) so that every replica of the front door sees them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from argon2.profiles import RFC_9106_LOW_MEMORY

from shared.domain.institutions import InstitutionRegistry

FAILURES_MAX = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
LOCK_DURATION = dt.timedelta(minutes=15)
USERNAME_LENGTH_MAX = 64
PASSWORD_LENGTH_MAX = 256  # Argon2 takes any length; a bound keeps a request's work bounded
_DEVELOPMENT_LABEL = "stafet-development-portal-password-not-for-production:"

HASHER = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)


class Role(StrEnum):
    """What a user may do: read the statement (viewer), and also dispute its lines in the
    review window (administrator);
    an operator (of the paying municipality) reads the overview of every contract instead."""

    VIEWER = "viewer"
    ADMINISTRATOR = "administrator"
    OPERATOR = "operator"


DEVELOPMENT_OPERATOR = "operator"


def development_viewer(institution: str) -> str:
    """The development user who may read an institution's statement but not dispute it."""
    return f"{institution}-viewer"


class AccountsConfigurationError(RuntimeError):
    pass


@dataclass(frozen=True)
class PortalUser:
    username: str
    institution: str
    role: Role


@dataclass(frozen=True)
class _Account:
    user: PortalUser
    password_hash: str | None  # None: a development user, checked against development_password


def development_password(username: str) -> str:
    """The well-known development password of a development user (named after its institution)."""
    return "demo-" + hashlib.sha256((_DEVELOPMENT_LABEL + username).encode()).hexdigest()[:12]


def hash_password(password: str) -> str:
    return HASHER.hash(password)


# Verified against when the user name is unknown, so that an unknown name costs the same
# Argon2 work as a known one and the answer's timing does not tell which names exist.
_DUMMY_HASH = HASHER.hash("no such user: the password is never this")


class Accounts:
    def __init__(self, accounts: dict[str, _Account]) -> None:
        self._accounts = accounts

    @classmethod
    def from_settings(cls, users_file: Path | None, registry: InstitutionRegistry, production: bool) -> Accounts:
        accounts: dict[str, _Account] = {}
        if users_file is not None:
            accounts.update(_read_users_file(users_file, registry))
        if not production:
            for institution in registry.all():
                accounts.setdefault(institution.id, _Account(
                    PortalUser(institution.id, institution.id, Role.ADMINISTRATOR), None))
                viewer = development_viewer(institution.id)
                if len(viewer) <= USERNAME_LENGTH_MAX:
                    accounts.setdefault(viewer, _Account(PortalUser(viewer, institution.id, Role.VIEWER), None))
            payer = next((i for i in registry.all() if i.kind == "municipality"), None)
            if payer is not None:  # the development operator acts for the first municipality
                accounts.setdefault(DEVELOPMENT_OPERATOR, _Account(
                    PortalUser(DEVELOPMENT_OPERATOR, payer.id, Role.OPERATOR), None))
        return cls(accounts)

    def authenticate(self, username: str, password: str) -> PortalUser | None:
        """The user, if the password is theirs; None otherwise (unknown name or wrong password)."""
        if len(username) > USERNAME_LENGTH_MAX or len(password) > PASSWORD_LENGTH_MAX:
            return None
        account = self._accounts.get(username)
        if account is None:
            _verify(_DUMMY_HASH, password)
            return None
        if account.password_hash is None:
            expected = development_password(account.user.username)
            return account.user if hmac.compare_digest(expected.encode(), password.encode()) else None
        return account.user if _verify(account.password_hash, password) else None

    def get(self, username: str) -> PortalUser | None:
        account = self._accounts.get(username)
        return account.user if account else None


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _read_users_file(path: Path, registry: InstitutionRegistry) -> dict[str, _Account]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = data.get("users") or {}
        accounts = {}
        for name, entry in entries.items():
            user = PortalUser(str(name), str(entry["institution"]), Role(entry.get("role", Role.VIEWER)))
            password_hash = str(entry["password"])
            if not password_hash.startswith("$argon2id$"):
                raise AccountsConfigurationError(f"{path}: user {name}: the password must be an Argon2id hash")
            accounts[user.username] = _Account(user, password_hash)
    except (OSError, yaml.YAMLError, AttributeError, TypeError, KeyError, ValueError) as error:
        raise AccountsConfigurationError(f"{path}: not a users file: {error}") from None
    unknown = sorted({a.user.institution for a in accounts.values() if registry.get(a.user.institution) is None})
    if unknown:
        raise AccountsConfigurationError(f"{path}: users of institutions not in the registry: {', '.join(unknown)}")
    too_long = sorted(name for name in accounts if len(name) > USERNAME_LENGTH_MAX)
    if too_long:
        raise AccountsConfigurationError(f"{path}: user names over {USERNAME_LENGTH_MAX} characters: {too_long[0]}")
    return accounts


def locked_until(failures: list[dt.datetime], now: dt.datetime) -> dt.datetime | None:
    """When a user name with these failed log-ins may try again; None if it may now.

    Locked when at least FAILURES_MAX failures fall within FAILURE_WINDOW of each other
    and the last of them is less than LOCK_DURATION ago."""
    recent = sorted(f for f in failures if f > now - FAILURE_WINDOW - LOCK_DURATION)
    for index in range(len(recent) - FAILURES_MAX + 1):
        window = recent[index:index + FAILURES_MAX]
        if window[-1] - window[0] <= FAILURE_WINDOW:
            until = recent[-1] + LOCK_DURATION
            return until if until > now else None
    return None
