"""The front door's bearer tokens: hashes at rest, development tokens only in development."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.frontdoor.auth import Authenticator, TokenConfigurationError, development_token, new_token, token_hash
from shared.domain.institutions import InstitutionRegistry
from shared.platform.settings import REPO_ROOT

REGISTRY = InstitutionRegistry.from_file(REPO_ROOT / "examples" / "institutions.yaml")


def test_a_token_from_the_file_names_its_institution_and_nothing_else_does(tmp_path: Path) -> None:
    token = new_token()
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  alsskolen: [{token_hash(token)}]\n")
    door = Authenticator.from_settings(tokens, REGISTRY, production=True)
    assert door.institution_of(f"Bearer {token}") == "alsskolen"
    assert door.institution_of(token) is None               # not a bearer header
    assert door.institution_of(f"Bearer {token}x") is None
    assert door.institution_of(None) is None
    # Production trusts no development token.
    assert door.institution_of(f"Bearer {development_token('alsskolen')}") is None


def test_development_mode_adds_a_well_known_token_per_institution() -> None:
    door = Authenticator.from_settings(None, REGISTRY, production=False)
    assert door.institution_of(f"Bearer {development_token('jobvejen')}") == "jobvejen"


def test_production_refuses_to_start_without_tokens_or_with_tokens_for_strangers(tmp_path: Path) -> None:
    with pytest.raises(TokenConfigurationError, match="production"):
        Authenticator.from_settings(None, REGISTRY, production=True)
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(f"tokens:\n  no-such-school: [{token_hash('t')}]\n")
    with pytest.raises(TokenConfigurationError, match="no-such-school"):
        Authenticator.from_settings(tokens, REGISTRY, production=True)
