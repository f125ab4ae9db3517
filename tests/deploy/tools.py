"""The deploy tests' tools: Helm (pinned, installed by `make helm` into ~/.cache/stafet)
and podman (Debian's, through deploy/image/podman.sh). Missing tools fail loudly."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from shared.platform.settings import REPO_ROOT

HELM_VERSION = "v3.21.4"  # keep in step with the Makefile's HELM_VERSION
CHART = REPO_ROOT / "deploy" / "helm" / "stafet"
CRD_SCHEMAS = REPO_ROOT / "deploy" / "helm" / "crd-schemas"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes we promise, within kubernetes-validate's schemas
PODMAN = REPO_ROOT / "deploy" / "image" / "podman.sh"


def helm_binary() -> Path:
    found = Path(os.environ.get("HELM") or Path.home() / ".cache" / "stafet" / f"helm-{HELM_VERSION}" / "helm")
    if not found.is_file():
        raise AssertionError(f"helm {HELM_VERSION} not found at {found}: run `make helm` (make test does)")
    return found


def render(*args: str, values: dict[str, Any] | None = None, tmp: Path | None = None,
           release: str = "stafet") -> list[dict[str, Any]]:
    """`helm template` with the given arguments (and a values file made from `values`)."""
    command = [str(helm_binary()), "template", release, str(CHART), "--kube-version", KUBERNETES_VERSION, *args]
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        command += ["-f", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, check=False, timeout=120)


def dashboard_metric_names(board: dict[str, Any]) -> set[str]:
    """Every metric name the dashboard's queries read (tests/deploy/test_podman.py checks
    them against the services' live /metrics)."""
    expressions = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    expressions += [v["definition"] for v in board["templating"]["list"] if v.get("definition")]
    return {name for e in expressions for name in re.findall(r"\b((?:stafet|process|faststream)_[a-z_]+)\b", e)}
