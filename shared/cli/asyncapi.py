"""`stafet docs`: the AsyncAPI documents, generated from the FastStream apps themselves.

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

from shared.processes import SERVICES
from shared.settings import REPO_ROOT

ASYNCAPI_DIR = REPO_ROOT / "docs" / "asyncapi"
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
        document = yaml.safe_load(out.read_text())
        out.write_text(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100))
        written.append(out)
    return written


def drift() -> list[str]:
    """Unified diffs between the checked-in documents and freshly generated ones."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for fresh in generate(Path(scratch)):
            kept = ASYNCAPI_DIR / fresh.name
            old = kept.read_text().splitlines(keepends=True) if kept.exists() else []
            new = fresh.read_text().splitlines(keepends=True)
            if old != new:
                problems.append("".join(difflib.unified_diff(old, new, str(kept), "generated")))
    return problems
