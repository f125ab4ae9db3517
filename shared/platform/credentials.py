"""Who a process is, to Kafka and to PostgreSQL: the one place credentials are read.

Every Kafka client in the project (the three services, the CLI, the benchmark, the tests'
helpers) gets its SASL/SCRAM-SHA-512 options from `kafka_options`/`faststream_security`,
and every database connection its URL from `database_url`. A process names the
principal (Kafka) and role (PostgreSQL) it acts as by default (`ingest`, `operator`,
`finance`, ...); settings can name another.

Where the secret comes from, in order:
1. `KAFKA_USERNAME` with `KAFKA_PASSWORD_FILE` (or `KAFKA_PASSWORD`); a `DATABASE_URL`
   naming its user, with the password in it or in `DATABASE_PASSWORD_FILE`. This is how
   a deployment runs: one identity per process, secrets mounted as files.
2. Development only: the local stack's credentials directory (`stafet dev up` writes one
   password file per principal and role under `.stack/credentials/`), so `make demo`,
   `make up` and the tests need no configuration.

`STAFET_ENV=production` never falls back to 2: a process without configured
credentials refuses to start (`CredentialsError`) instead of connecting as somebody else.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from faststream.security import SASLScram512

from shared.platform.settings import REPO_ROOT, Settings

SASL_MECHANISM = "SCRAM-SHA-512"
# PostgreSQL roles are named after what they do; the runtime roles own nothing.
DB_ROLE_PREFIX = "stafet_"


class CredentialsError(RuntimeError):
    """No usable credentials: the message says which setting or file is missing."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""

    def __repr__(self) -> str:  # never print a secret by accident
        return f"Credentials(username={self.username!r}, password=***)"


def credentials_dir(settings: Settings) -> Path:
    """Where the local stack keeps the password files (development only)."""
    if settings.stafet_credentials_dir is not None:
        return settings.stafet_credentials_dir
    stack = Path(os.environ.get("STAFET_STACK_DIR", REPO_ROOT / ".stack"))
    return stack / "credentials"


def _read_secret(path: Path, what: str) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise CredentialsError(f"cannot read {what} from {path}: {error.strerror}") from None
    if not secret:
        raise CredentialsError(f"{what} file {path} is empty")
    return secret


def kafka_credentials(principal: str, settings: Settings | None = None) -> Credentials:
    """The username and password this process uses on the broker."""
    settings = settings or Settings()
    if settings.kafka_username:
        if settings.kafka_password is not None:
            return Credentials(settings.kafka_username, settings.kafka_password.get_secret_value())
        if settings.kafka_password_file is not None:
            return Credentials(settings.kafka_username,
                               _read_secret(settings.kafka_password_file, "KAFKA_PASSWORD_FILE"))
        raise CredentialsError(f"KAFKA_USERNAME={settings.kafka_username} is set but neither "
                               "KAFKA_PASSWORD_FILE nor KAFKA_PASSWORD is")
    if settings.stafet_env == "production":
        raise CredentialsError("production needs Kafka credentials: set KAFKA_USERNAME and "
                               "KAFKA_PASSWORD_FILE")
    path = credentials_dir(settings) / "kafka" / principal
    if not path.is_file():
        raise CredentialsError(f"no Kafka credentials for principal {principal!r}: set KAFKA_USERNAME "
                               f"and KAFKA_PASSWORD_FILE, or start the local stack (`stafet dev up` "
                               f"writes {path})")
    return Credentials(principal, _read_secret(path, f"the password of {principal!r}"))


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol != "SASL_SSL":
        return None
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ca_file) if settings.kafka_ca_file else None)
    return context


def kafka_options(principal: str, settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
    settings = settings or Settings()
    found = kafka_credentials(principal, settings)
    return {
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": _ssl_context(settings),
        "sasl_mechanism": SASL_MECHANISM,
        "sasl_plain_username": found.username,
        "sasl_plain_password": found.password,
    }


def faststream_security(principal: str, settings: Settings) -> SASLScram512:
    """The same credentials in FastStream's form, for the services' KafkaBroker."""
    found = kafka_credentials(principal, settings)
    context = _ssl_context(settings)
    return SASLScram512(found.username, found.password, ssl_context=context,
                        use_ssl=context is not None)


def db_role(role: str) -> str:
    return f"{DB_ROLE_PREFIX}{role}"


def database_url(role: str, settings: Settings | None = None) -> str:
    """The URL this process connects to PostgreSQL with, as `stafet_<role>` unless the
    URL names its user (a deployment gives every service its own)."""
    settings = settings or Settings()
    parts = urlsplit(settings.database_url)
    if parts.username:
        if parts.password:
            return settings.database_url
        if settings.database_password_file is not None:
            password = _read_secret(settings.database_password_file, "DATABASE_PASSWORD_FILE")
            return _with_user(settings.database_url, parts.username, password)
        if settings.stafet_env == "production":
            raise CredentialsError(f"DATABASE_URL names user {parts.username} but no password: set "
                                   "DATABASE_PASSWORD_FILE")
        return settings.database_url
    if settings.stafet_env == "production":
        raise CredentialsError("production needs database credentials: a DATABASE_URL with the "
                               "service's user, and DATABASE_PASSWORD_FILE")
    path = credentials_dir(settings) / "postgres" / role
    if not path.is_file():
        raise CredentialsError(f"no database credentials for role {db_role(role)}: put the user in "
                               f"DATABASE_URL and set DATABASE_PASSWORD_FILE, or start the local stack "
                               f"(`stafet dev up` writes {path})")
    return _with_user(settings.database_url, db_role(role), _read_secret(path, f"the password of {db_role(role)}"))


def with_password_file(url: str, path: Path) -> str:
    """`url` (which names its user) with the password read from the file at `path`."""
    user = urlsplit(url).username
    if not user:
        raise CredentialsError(f"{without_user(url)} names no user to log in with the password of {path}")
    return _with_user(url, user, _read_secret(path, "the password"))


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def without_user(url: str) -> str:
    """`url` with no user or password: for handing one address to several processes that
    each connect as their own role."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
