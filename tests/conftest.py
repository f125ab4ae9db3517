"""Fixtures: real Kafka and PostgreSQL for every test marked integration or e2e.

Each test gets its own topic namespace and its own database on the session's servers,
so tests never see each other's records or rows.

Security is on as everywhere else: the session's principals and roles are created once
with the stack; each test's namespace gets its ACLs in one request (PREFIXED patterns on
the namespace), and its database is created and migrated by the owner role. The test
process itself finds every principal's password through STAFET_CREDENTIALS_DIR, and the
services it starts get the same folder and pick their own principal and role.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from shared.platform.credentials import without_user
from shared.platform.db import migrate
from shared.platform.kafka import ensure_topics, wait_for_broker
from shared.platform.kafka_access import grant_namespace
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import all_topics
from tests.servers import Servers, real_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with real_servers() as found, pytest.MonkeyPatch.context() as patch:
        patch.setenv("STAFET_CREDENTIALS_DIR", str(found.credentials_dir))
        for name in ("KAFKA_USERNAME", "KAFKA_PASSWORD", "KAFKA_PASSWORD_FILE", "DATABASE_PASSWORD_FILE"):
            patch.delenv(name, raising=False)
        patch.setenv("STAFET_ENV", "development")
        asyncio.run(wait_for_broker(found.bootstrap_servers))
        yield found


@pytest.fixture
def namespace(servers: Servers) -> str:
    return new_namespace(servers)


def new_namespace(servers: Servers) -> str:
    """A topic namespace of its own, with every topic and its ACLs."""
    name = f"t{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        await ensure_topics(servers.bootstrap_servers, all_topics(name))
        await grant_namespace(servers.bootstrap_servers, name)

    asyncio.run(create())
    return name


@pytest.fixture
def database_url(servers: Servers) -> str:
    return new_database(servers)


def new_database(servers: Servers, *, migrated: bool = True) -> str:
    """A fresh database (migrated unless told not to); its URL as the owner role (which created it)."""
    name = f"t{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(servers.role_url("owner", "postgres"))
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        if migrated:
            await migrate(servers.role_url("owner", name))

    asyncio.run(create())
    return servers.role_url("owner", name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture
def service_env(servers: Servers, namespace: str, database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
        # No user: each service connects as its own runtime role.
        "DATABASE_URL": without_user(database_url),
        "STAFET_CREDENTIALS_DIR": str(servers.credentials_dir),
        "STAFET_TOPIC_NAMESPACE": namespace,
        "BATCH_MAX_RECORDS": "200",
        "BATCH_TIMEOUT_MS": "100",
        "LOG_LEVEL": "INFO",
        "CONTRACT_FILES": str(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"),
        "TICK_INTERVAL_S": "0.5",
    }
