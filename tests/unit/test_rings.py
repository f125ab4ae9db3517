"""The rings (docs/architecture.md) are checked by import-linter in `make lint`: these tests
plant the imports the rings forbid in a copy of the code and show that the check fails.
(Against the real tree it must pass; `make lint` runs it in `.ci/run` before the tests.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.platform.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_of_the_code(target: Path) -> Path:
    for package in ("cli", "services", "shared"):
        shutil.copytree(REPO_ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.sql", "xsd", "*.md"))
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_real_tree_keeps_every_ring() -> None:
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(("module", "planted", "broken"), [
    ("shared/domain/currency.py", "import services.ledger.store", "The rings"),
    ("shared/platform/retry.py", "import cli.main", "The rings"),
    ("services/ingest/dedup.py", "import services.ledger.queries", "A service never imports another service"),
    ("shared/domain/events.py", "import asyncpg", "The domain does no I/O"),
])
def test_a_planted_import_against_the_rings_fails_the_check(tmp_path: Path, module: str, planted: str, broken: str) -> None:
    tree = _copy_of_the_code(tmp_path)
    path = tree / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{planted}  # planted\n", encoding="utf-8")

    result = _lint_imports(tree)

    assert result.returncode != 0
    assert f"{broken}" in result.stdout
    assert "BROKEN" in result.stdout or "Broken contracts" in result.stdout
    assert planted.split()[-1] in result.stdout
