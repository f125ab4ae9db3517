"""Production refuses development keys; real keys round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from services.ingest.keys import ConfigurationError, pseudonym_key, sealing_key
from shared.domain.pseudonym import DEVELOPMENT_KEY
from shared.domain.sealing import load_public_key, seal, unseal
from shared.platform.settings import Settings


def test_production_refuses_to_start_without_a_pseudonym_key() -> None:
    with pytest.raises(ConfigurationError, match="PSEUDONYM_KEY"):
        pseudonym_key(Settings(stafet_env="production"))


def test_production_refuses_to_start_without_a_sealing_key() -> None:
    with pytest.raises(ConfigurationError, match="SEALING_PRIVATE_KEY_FILE"):
        sealing_key(Settings(stafet_env="production"))


def test_development_falls_back_to_the_well_known_keys() -> None:
    assert pseudonym_key(Settings(stafet_env="development")) == DEVELOPMENT_KEY


def test_keys_new_writes_a_working_pair_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "new", "--out", str(tmp_path)]).exit_code == 0
    settings = Settings(stafet_env="production", sealing_private_key_file=tmp_path / "ingest-sealing.key",
                        pseudonym_key_file=tmp_path / "pseudonym.key")
    token = seal("010203-4567", load_public_key(tmp_path / "ingest-sealing.pub"))
    assert unseal(token, sealing_key(settings)) == "010203-4567"
    assert len(pseudonym_key(settings)) == 64
    assert (tmp_path / "pseudonym.key").stat().st_mode & 0o077 == 0
    again = runner.invoke(app, ["keys", "new", "--out", str(tmp_path)])
    assert again.exit_code == 2
