"""Fixtures: real Kafka and PostgreSQL for every test marked integration or e2e.

Each test gets its own topic namespace and its own database on the session's servers,
so tests never see each other's records or rows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from shared.db import migrate
from shared.kafka import ensure_topics, wait_for_broker
from shared.settings import REPO_ROOT
from shared.topics import all_topics
from tests.servers import Servers, real_servers


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    with real_servers() as found:
        asyncio.run(wait_for_broker(found.bootstrap_servers))
        yield found


@pytest.fixture
def namespace(servers: Servers) -> str:
    name = f"t{uuid.uuid4().hex[:10]}"
    asyncio.run(ensure_topics(servers.bootstrap_servers, all_topics(name)))
    return name


@pytest.fixture
def database_url(servers: Servers) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(servers.admin_database_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        await migrate(servers.database_url(name))

    asyncio.run(create())
    return servers.database_url(name)


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
        "DATABASE_URL": database_url,
        "STAFET_TOPIC_NAMESPACE": namespace,
        "BATCH_MAX_RECORDS": "200",
        "BATCH_TIMEOUT_MS": "100",
        "LOG_LEVEL": "INFO",
        "CONTRACT_FILES": str(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml"),
        "TICK_INTERVAL_S": "0.5",
    }
