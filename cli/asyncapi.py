"""`stafet docs`: the AsyncAPI documents, generated from the FastStream apps themselves,
and the front door's OpenAPI document, generated from its FastAPI app.

Each service's document is written by FastStream from the app's subscribers and
publishers (their topics, titles, descriptions and pydantic models), in a clean
environment so that the output does not depend on the machine: default bootstrap
address, default topic namespace. `--check` regenerates into a temporary folder and
fails when the checked-in documents differ, which is how CI catches drift.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from cli.asyncapi_complete import complete
from shared.platform.processes import SERVICES
from shared.platform.settings import REPO_ROOT

ASYNCAPI_DIR = REPO_ROOT / "docs" / "asyncapi"
OPENAPI_DIR = REPO_ROOT / "docs" / "openapi"
GENERATE_TIMEOUT_S = 120


def generate(directory: Path) -> list[Path]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP_SERVERS", "STAFET_TOPIC_NAMESPACE", "CONTRACT_FILES", "INSTITUTIONS_FILE"}}
    env["STAFET_ASYNCAPI"] = "1"
    written = []
    for service in SERVICES:
        out = directory / f"{service}.yaml"
        subprocess.run(
            [sys.executable, "-m", "faststream", "docs", "gen", "--yaml", "--out", str(out),
             f"services.{service}.app:app"],
            cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, timeout=GENERATE_TIMEOUT_S,
        )
        # FastStream keeps publishers in a set, so their order varies from run to run:
        # sorted keys make the document a function of the code alone.
        document = complete(yaml.safe_load(out.read_text()))
        out.write_text(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100))
        written.append(out)
    return written


def generate_openapi(directory: Path) -> list[Path]:
    """The front door's OpenAPI document (no server address in it: nothing machine-bound)."""
    from services.frontdoor.app import openapi_document

    out = directory / "frontdoor.yaml"
    out.write_text(yaml.safe_dump(openapi_document(), sort_keys=True, allow_unicode=True, width=100))
    return [out]


def drift() -> list[str]:
    """Unified diffs between the checked-in documents and freshly generated ones."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        fresh_files = [(ASYNCAPI_DIR, f) for f in generate(Path(scratch))]
        fresh_files += [(OPENAPI_DIR, f) for f in generate_openapi(Path(scratch))]
        for kept_dir, fresh in fresh_files:
            kept = kept_dir / fresh.name
            old = kept.read_text().splitlines(keepends=True) if kept.exists() else []
            new = fresh.read_text().splitlines(keepends=True)
            if old != new:
                problems.append("".join(difflib.unified_diff(old, new, str(kept), "generated")))
    return problems
