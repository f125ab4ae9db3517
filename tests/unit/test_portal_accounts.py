"""Portal accounts: Argon2id hashes, development users, the lock-out rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.frontdoor.portal.accounts import (
    FAILURE_WINDOW,
    FAILURES_MAX,
    LOCK_DURATION,
    Accounts,
    AccountsConfigurationError,
    Role,
    development_password,
    hash_password,
    locked_until,
)
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")
NOW = dt.datetime(2026, 12, 5, 7, 0, tzinfo=dt.UTC)


def users_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_from_the_file_logs_in_with_the_password_whose_hash_is_stored(tmp_path: Path) -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert "correct" not in stored
    path = users_file(tmp_path, f'users:\n  anna: {{institution: alsskolen, role: administrator, password: "{stored}"}}\n')
    accounts = Accounts.from_settings(path, REGISTRY, production=True)
    user = accounts.authenticate("anna", "correct horse battery staple")
    assert user is not None
    assert (user.institution, user.role) == ("alsskolen", Role.ADMINISTRATOR)
    assert accounts.authenticate("anna", "correct horse battery stapler") is None
    assert accounts.authenticate("bo", "correct horse battery staple") is None


def test_production_has_no_development_users_and_development_has_one_per_institution(tmp_path: Path) -> None:
    production = Accounts.from_settings(None, REGISTRY, production=True)
    assert production.authenticate("alsskolen", development_password("alsskolen")) is None
    development = Accounts.from_settings(None, REGISTRY, production=False)
    user = development.authenticate("alsskolen", development_password("alsskolen"))
    assert user is not None
    assert user.institution == "alsskolen"
    # One institution's development password is not another's.
    assert development.authenticate("nordborg-skole", development_password("alsskolen")) is None


def test_a_users_file_naming_an_unknown_institution_or_holding_a_clear_password_is_refused(tmp_path: Path) -> None:
    stored = hash_password("x" * 12)
    unknown = users_file(tmp_path, f'users:\n  anna: {{institution: nowhere, password: "{stored}"}}\n')
    with pytest.raises(AccountsConfigurationError, match="nowhere"):
        Accounts.from_settings(unknown, REGISTRY, production=True)
    clear = users_file(tmp_path, "users:\n  anna: {institution: alsskolen, password: hunter2hunter2}\n")
    with pytest.raises(AccountsConfigurationError, match="Argon2id"):
        Accounts.from_settings(clear, REGISTRY, production=True)


def test_a_user_name_is_locked_after_the_fifth_failure_within_the_window() -> None:
    failures = [NOW - dt.timedelta(minutes=m) for m in (4, 3, 2, 1)]
    assert locked_until(failures, NOW) is None  # four: not yet
    failures.append(NOW)
    assert FAILURES_MAX == 5
    assert locked_until(failures, NOW) == NOW + LOCK_DURATION
    # Still locked a minute before the lock runs out, free after it.
    assert locked_until(failures, NOW + LOCK_DURATION - dt.timedelta(minutes=1)) == NOW + LOCK_DURATION
    assert locked_until(failures, NOW + LOCK_DURATION + dt.timedelta(seconds=1)) is None


def test_failures_spread_wider_than_the_window_do_not_lock() -> None:
    spread = FAILURE_WINDOW / (FAILURES_MAX - 2)
    failures = [NOW - spread * i for i in range(FAILURES_MAX)]
    assert failures[0] - failures[-1] > FAILURE_WINDOW
    assert locked_until(failures, NOW) is None


def test_the_entry_stafet_frontdoor_user_prints_logs_that_user_in(tmp_path: Path) -> None:
    import subprocess
    import sys

    password = tmp_path / "pw.txt"
    password.write_text("a long enough passphrase\n", encoding="utf-8")
    stafet = Path(sys.executable).with_name("stafet")
    done = subprocess.run([str(stafet), "frontdoor", "user", "--institution", "alsskolen", "--name", "anna.alsskolen",
                           "--role", "administrator", "--password-file", str(password)],
                          capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert "a long enough passphrase" not in done.stdout
    entry = done.stdout.split("for FRONT_DOOR_USERS_FILE:\n", 1)[1]
    accounts = Accounts.from_settings(users_file(tmp_path, entry), REGISTRY, production=True)
    user = accounts.authenticate("anna.alsskolen", "a long enough passphrase")
    assert user is not None
    assert (user.institution, user.role) == ("alsskolen", Role.ADMINISTRATOR)
