"""Settings read from the environment (prefix-free names operators already know).

Every knob has an explicit, bounded default; services read one `Settings` at start
and pass values down explicitly rather than reaching for globals.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.indicators.model import DEFAULT_MINIMUM_CELL, MINIMUM_CELL_MAX

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    # Credentials may also come as files named after the setting (database_url, ...) in
    # STAFET_SECRETS_DIR: how Kubernetes mounts a Secret (deploy/helm/stafet). A variable
    # of the same name in the environment wins over the file.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True,
                                      secrets_dir=os.environ.get("STAFET_SECRETS_DIR") or None)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # No user in the URL: each process connects as its own role (`shared/platform/credentials.py`).
    database_url: str = "postgresql://127.0.0.1:5432/stafet"
    database_password_file: Path | None = None

    # Kafka authentication: SASL/SCRAM-SHA-512, one principal per process. In development
    # the local stack's password files are used when these are not set; production
    # refuses to start without them (`shared/platform/credentials.py`).
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_password_file: Path | None = None
    kafka_security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_PLAINTEXT"
    kafka_ca_file: Path | None = None
    # Where `stafet dev up` writes every principal's and role's password (development).
    stafet_credentials_dir: Path | None = None

    # Consumption: one database transaction per batch of at most this many records.
    batch_max_records: int = Field(default=500, ge=1, le=10_000)
    # How long an idle consumer waits for records; a batch is handed over as soon as any
    # record is there (aiokafka), so this does not fill batches. FastStream sleeps as long
    # again after an empty wait, and a record arriving then waits for the sleep: at 200 ms
    # that added up to 200 ms per hop (make bench's latency: p99 654 ms at 50 ms, 352 ms
    # at 10 ms, the same load).
    batch_timeout_ms: int = Field(default=20, ge=1, le=60_000)
    db_pool_max_size: int = Field(default=4, ge=1, le=64)

    # Ingest: the institution registry and the pseudonymisation key.
    institutions_file: Path = REPO_ROOT / "examples" / "institutions.yaml"
    pseudonym_key: str | None = None
    pseudonym_key_file: Path | None = None
    pseudonym_key_id: str = Field(default="k1", pattern=r"^[a-z0-9]{1,8}$")
    # Sealing CPR numbers on their way to ingest: ingest holds the private key, the
    # publishers institutions run hold the public key (`stafet keys new` makes a pair).
    sealing_private_key_file: Path | None = None
    sealing_public_key_file: Path | None = None
    # Signed records (shared/platform/trust.py): this process's Ed25519 signing key, and the
    # operator, finance and service public keys it trusts (institution keys are in the
    # institution registry).
    signing_key_file: Path | None = None
    trusted_keys_file: Path | None = None
    # Keys that end (shared/domain/key_lists.py): the operators' root public keys (hex,
    # comma-separated) that sign a key list in TRUSTED_KEYS_FILE and the revocation list
    # in REVOKED_KEYS_FILE (`stafet keys sign-list`, `stafet keys revoke`).
    trust_root_keys: str = ""
    revoked_keys_file: Path | None = None
    # The ledger: an operator's signed decision to sign checkpoints again after anchors
    # were removed (services/ledger/anchors.py, `stafet ledger checkpoints reanchor`).
    ledger_reanchor_decision_file: Path | None = None
    # The ledger's upgrade boundary for signed originals (services/ledger/origins.py): a
    # journal created before forwarded records carried finance's or the investor's signed
    # original keeps its older settlements and investment records believed on the
    # forwarder's signature, if the broker stamped them before this time (ISO 8601 with a
    # zone: the moment the upgraded ledger started). Unset (a new installation): every
    # forwarded record must carry its original.
    ledger_origins_required_from: AwareDatetime | None = None
    # Tenants (shared/domain/tenancy.py, docs/tenancy.md): which payer's operators may
    # publish which contracts and which finance principals may settle which payments.
    # Unset: one payer's installation, where every trusted operator and finance key acts
    # for it (as before tenants).
    tenants_file: Path | None = None
    # Development mode allows a well-known key so `make demo` runs with no secrets;
    # production mode refuses to start without a configured key.
    stafet_env: str = Field(default="development", pattern=r"^(development|production)$")

    # Verifier: contract files to apply at start, besides those on the contracts topic
    # (comma-separated paths; empty by default).
    contract_files: str = ""
    # How often the verifier checks for due timers when no transitions arrive.
    tick_interval_s: float = Field(default=2.0, gt=0, le=3600)

    log_level: str = "INFO"

    # Published statistics (reports, indicator tables, indicator exports): a figure about
    # fewer subjects than this is suppressed and marked, never shown (docs/privacy.md,
    # "Small cells"). One setting for every such output; financial records are exact.
    minimum_cell: int = Field(default=DEFAULT_MINIMUM_CELL, ge=1, le=MINIMUM_CELL_MAX)

    # Operations (shared/platform/health.py): the HTTP port for liveness, readiness and /metrics
    # (0: no HTTP server, the default for local runs of several services on one host; the
    # image sets 8080), how often database-derived gauges and consumer lag are refreshed,
    # and how often the ledger re-verifies its whole hash chain for the metrics.
    http_port: int = Field(default=0, ge=0, le=65535)
    metrics_refresh_s: float = Field(default=15.0, ge=0.1, le=3600)
    ledger_verify_interval_s: float = Field(default=3600.0, ge=1, le=7 * 86400)

    def contract_paths(self) -> tuple[Path, ...]:
        return tuple(Path(p) for p in self.contract_files.split(",") if p.strip())
