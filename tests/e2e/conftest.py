"""Fixtures for the end-to-end tests that stop and start servers themselves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.platform.stack import LocalStack, free_port


@pytest.fixture
def own_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    """A Kafka and a PostgreSQL of the test's own, not yet started: the test kills, stops
    and starts them (the session's servers are shared and must stay up)."""
    with tempfile.TemporaryDirectory(prefix="stafet-own-stack-") as directory:
        stack = LocalStack(Path(directory), kafka_port=free_port(), controller_port=free_port(),
                           postgres_port=free_port(), database="own")
        stack.directory.mkdir(parents=True, exist_ok=True)
        # Passwords first, so a ledger started before its servers finds its credentials;
        # this test's own clients use this stack's, not the session's.
        stack.prepare_credentials()
        monkeypatch.setenv("STAFET_CREDENTIALS_DIR", str(stack.credentials_dir))
        try:
            yield stack
        finally:
            stack.down()
