"""Where a process's Kafka and PostgreSQL credentials come from, and production's refusal
to run without them (docs/security.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.platform.credentials import (
    CredentialsError,
    database_url,
    kafka_credentials,
    kafka_options,
    with_password_file,
)
from shared.platform.settings import REPO_ROOT, Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {"stafet_credentials_dir": tmp_path / "credentials", "kafka_username": None,
                               "kafka_password": None, "kafka_password_file": None,
                               "database_password_file": None, "stafet_env": "development"}
    return Settings(**(base | values))  # type: ignore[arg-type]


def secret(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    return path


def test_production_refuses_to_connect_to_kafka_without_credentials(tmp_path: Path) -> None:
    # Even with a development credentials folder at hand, production does not fall back to it.
    secret(tmp_path / "credentials" / "kafka" / "ledger", "dev-password")
    with pytest.raises(CredentialsError, match="production needs Kafka credentials"):
        kafka_credentials("ledger", settings(tmp_path, stafet_env="production"))


def test_a_username_without_a_password_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="neither KAFKA_PASSWORD_FILE nor KAFKA_PASSWORD"):
        kafka_credentials("ledger", settings(tmp_path, kafka_username="ledger-prod", stafet_env="production"))


def test_production_reads_the_password_from_its_secret_file(tmp_path: Path) -> None:
    found = kafka_credentials("ledger", settings(
        tmp_path, stafet_env="production", kafka_username="ledger-prod",
        kafka_password_file=secret(tmp_path / "secrets" / "kafka", "s3cret")))
    assert (found.username, found.password) == ("ledger-prod", "s3cret")
    assert "s3cret" not in repr(found)


def test_development_finds_the_local_stacks_password_per_principal(tmp_path: Path) -> None:
    secret(tmp_path / "credentials" / "kafka" / "finance", "from-the-stack")
    options = kafka_options("finance", settings(tmp_path))
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("finance", "from-the-stack")
    with pytest.raises(CredentialsError, match="stafet dev up"):
        kafka_credentials("operator", settings(tmp_path))


def test_tls_is_a_setting_away(tmp_path: Path) -> None:
    secret(tmp_path / "credentials" / "kafka" / "finance", "from-the-stack")
    options = kafka_options("finance", settings(tmp_path, kafka_security_protocol="SASL_SSL"))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["ssl_context"] is not None


def test_production_refuses_a_database_url_without_user_or_password(tmp_path: Path) -> None:
    secret(tmp_path / "credentials" / "postgres" / "ledger", "dev-password")
    with pytest.raises(CredentialsError, match="production needs database credentials"):
        database_url("ledger", settings(tmp_path, stafet_env="production",
                                        database_url="postgresql://db:5432/stafet"))
    with pytest.raises(CredentialsError, match="DATABASE_PASSWORD_FILE"):
        database_url("ledger", settings(tmp_path, stafet_env="production",
                                        database_url="postgresql://stafet_ledger@db:5432/stafet"))


def test_the_database_password_comes_from_its_secret_file(tmp_path: Path) -> None:
    url = database_url("ledger", settings(
        tmp_path, stafet_env="production", database_url="postgresql://stafet_ledger@db:5432/stafet",
        database_password_file=secret(tmp_path / "secrets" / "db", "p@ss/word")))
    assert url == "postgresql://stafet_ledger:p%40ss%2Fword@db:5432/stafet"


def test_a_second_url_takes_its_password_from_a_file_and_must_name_its_user(tmp_path: Path) -> None:
    """`stafet audit --scratch-password-file`: the scratch database's password stays off
    the command line (a CronJob's args are readable by whoever reads the pod)."""
    path = secret(tmp_path / "scratch" / "password", "p@ss/w:rd")
    url = with_password_file("postgresql://stafet_audit@db:5432/stafet_audit?sslmode=require", path)
    assert url == "postgresql://stafet_audit:p%40ss%2Fw%3Ard@db:5432/stafet_audit?sslmode=require"
    with pytest.raises(CredentialsError, match="names no user"):
        with_password_file("postgresql://db:5432/stafet_audit", path)
    with pytest.raises(CredentialsError, match="cannot read"):
        with_password_file("postgresql://stafet_audit@db/stafet_audit", tmp_path / "missing")


def test_development_connects_as_the_processs_own_role(tmp_path: Path) -> None:
    secret(tmp_path / "credentials" / "postgres" / "verifier", "v-pass")
    url = database_url("verifier", settings(tmp_path, database_url="postgresql://127.0.0.1:5432/stafet"))
    assert url == "postgresql://stafet_verifier:v-pass@127.0.0.1:5432/stafet"


@pytest.mark.parametrize("service", ["ledger", "verifier"])
def test_a_service_in_production_refuses_to_start_without_credentials(service: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KAFKA_", "DATABASE_", "STAFET_CREDENTIALS"))}
    env |= {"STAFET_ENV": "production", "STAFET_CREDENTIALS_DIR": str(tmp_path)}
    started = subprocess.run([sys.executable, "-c", f"import services.{service}.app"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    assert "production needs Kafka credentials" in started.stderr
