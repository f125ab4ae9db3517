"""PostgreSQL helpers: a bounded connection pool and the migration runner.

Migrations are plain SQL files, one folder per owner (`services/<name>/sql/`), applied
in file-name order inside one transaction each and recorded in `schema_migrations`, so
running them again is a no-op. An advisory lock keeps two migration jobs from applying
the same file at once.

Migrations are applied by the owner role only (`stafet db migrate`, the deployment's
migration job, the stack's setup); a service runs as a runtime role that may not create
or alter anything, so at start it only checks that the schema is current and refuses to
run on an older one.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

from shared.platform.credentials import database_url
from shared.platform.settings import REPO_ROOT, Settings

MIGRATION_DIRS: tuple[Path, ...] = (
    REPO_ROOT / "services" / "ingest" / "sql",
    REPO_ROOT / "services" / "verifier" / "sql",
    REPO_ROOT / "services" / "ledger" / "sql",
    REPO_ROOT / "services" / "frontdoor" / "sql",
)
_MIGRATION_LOCK_KEY = 0x57AFE7  # any constant; shared by every service of this project


async def create_pool(database_url: str, *, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size,
                                     command_timeout=60)
    assert pool is not None
    return pool


class SchemaBehind(RuntimeError):
    """The database lacks migrations this code needs: run `stafet db migrate`."""


class NotReadyYet(ConnectionError):
    """The database does not exist yet, or lacks migrations: a service started alongside
    the deployment's migration job waits for it like for a server that is not up yet
    (an OSError, so `shared/platform/retry.py` retries it with backoff and gives up in the end)."""


def migration_names(dirs: tuple[Path, ...] = MIGRATION_DIRS) -> list[str]:
    return [f"{directory.parent.name}/{path.name}"
            for directory in dirs for path in sorted(directory.glob("*.sql"))]


async def require_migrated(database_url: str, dirs: tuple[Path, ...] = MIGRATION_DIRS) -> None:
    """Raise SchemaBehind unless every migration of this code has been applied."""
    connection = await asyncpg.connect(database_url)
    try:
        exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = ({r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
                if exists else set())
    finally:
        await connection.close()
    missing = [name for name in migration_names(dirs) if name not in done]
    if missing:
        raise SchemaBehind(f"{len(missing)} migration(s) not applied ({', '.join(missing[:3])}"
                           f"{', ...' if len(missing) > 3 else ''}): run `stafet db migrate` as the owner role")


class Database:
    """A service's connection pool: the schema checked and the pool opened at start-up,
    closed at shut-down. `pool` is only valid while the service runs."""

    def __init__(self, settings: Settings, *, role: str, max_size: int) -> None:
        self._settings, self._role, self._max_size = settings, role, max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> asyncpg.Pool:
        """Check the schema and open the pool, waiting (with backoff, logged) while the
        server is unreachable: a service started during a database outage starts when it
        ends, and while its migrations have not been applied (the runtime role cannot apply
        them); it gives up after `shared/platform/retry.py`'s longest wait."""
        from shared.platform.retry import database_host, until_reachable

        # Resolved here, not at import: `make docs` imports the apps with no credentials.
        url = database_url(self._role, self._settings)

        async def attempt() -> asyncpg.Pool:
            try:
                await require_migrated(url)
            except (SchemaBehind, asyncpg.InvalidCatalogNameError) as error:
                raise NotReadyYet(str(error)) from error
            return await create_pool(url, max_size=self._max_size)

        self._pool = await until_reachable(f"postgresql {database_host(url)}", attempt)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open (the service has not started)")
        return self._pool


def migration_files(dirs: tuple[Path, ...] = MIGRATION_DIRS) -> list[tuple[str, Path]]:
    """Every migration in the order it is applied, with the name it is recorded under."""
    return [(f"{directory.parent.name}/{path.name}", path)
            for directory in dirs for path in sorted(directory.glob("*.sql"))]


def expected_migrations() -> set[str]:
    """The names this code expects in schema_migrations (readiness: the schema's version)."""
    return {name for name, _ in migration_files()}


async def migrate(database_url: str, dirs: tuple[Path, ...] = MIGRATION_DIRS) -> list[str]:
    """Apply every migration not yet applied; return the names applied now."""
    connection = await asyncpg.connect(database_url)
    applied_now: list[str] = []
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # Every runtime role checks at start that the schema is current.
        await connection.execute("GRANT SELECT ON schema_migrations TO PUBLIC")
        done = {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
        for name, path in migration_files(dirs):
            if name in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute(
                    "INSERT INTO schema_migrations (name) VALUES ($1)", name)
            applied_now.append(name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK_KEY)
        await connection.close()
    return applied_now


async def migrate_when_ready(database_url: str, *, wait_s: float, dirs: tuple[Path, ...] = MIGRATION_DIRS) -> list[str]:
    """`migrate`, waiting up to `wait_s` seconds (with backoff, logged) while the server is
    unreachable or a role the migrations grant to does not exist yet.

    The deployment's migration job may start with the database it migrates: a
    CloudNativePG cluster created in the same install is not there, then refuses
    connections while it bootstraps, and creates its managed roles (the services' runtime
    roles, which the migrations grant their statements) only once it runs. Each failed
    attempt is rolled back whole (one transaction per file), so trying again is safe."""
    from shared.platform.retry import database_host, until_reachable

    async def attempt() -> list[str]:
        try:
            return await migrate(database_url, dirs)
        except asyncpg.UndefinedObjectError as error:
            if "role" not in str(error):
                raise
            raise NotReadyYet(f"a role is not there yet: {error}") from error

    return await until_reachable(f"postgresql {database_host(database_url)}", attempt, wait_s_max=wait_s)


async def recreate_database(admin_url: str, name: str, *, template: str | None = None) -> str:
    """Drop (if there) and create database `name` on the server of `admin_url`; its URL.

    For runs that must start clean: the demo, the benchmark and the profile; with
    `template`, a copy of that database (the fault schedule's rebuild check). `admin_url`
    is the owner role's (it may create databases, and owns those it creates).
    """
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await connection.close()
    return admin_url.rpartition("/")[0] + f"/{name}"
