"""Playing the chart's rendered objects with `podman kube play` on the host network.

podman runs Deployments, ConfigMaps and Secrets as pods (one pod per Deployment,
whatever its replicas); a Job is not a kind it plays, so the migration Job's pod
template is played as a Pod that runs to completion. Objects podman cannot run
(Service, PodDisruptionBudget, NetworkPolicy, ServiceAccount) are validated by
tests/deploy/test_chart.py instead.

Secrets: podman 4.3 (Debian 12) looks a Secret volume up in its own secret store, where
the secret's data is the Kubernetes Secret manifest itself, and writes each `data` value
into the volume as it stands, without base64-decoding it (and `stringData` not at all).
So each rendered Secret is stored with `podman secret create NAME manifest.yaml` with its
values decoded first.

Volumes: podman keeps a named volume for every ConfigMap and Secret it mounts, and a
later `kube play` of an object with the same name reuses that volume, stale content and
all. So the test plays each run under a release name of its own, and removes the secrets
and volumes of its objects before playing them and after `podman kube down`
(`remove_leftovers`).
"""

from __future__ import annotations

import base64
import copy
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import PODMAN

PLAYABLE = ("ConfigMap", "Deployment")
COMMAND_TIMEOUT_S = 300


def podman(*args: str, timeout_s: float = COMMAND_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(PODMAN), *args], capture_output=True, text=True, check=False, timeout=timeout_s)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def is_hook(obj: dict[str, Any]) -> bool:
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def write_manifest(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path


def create_secrets(folder: Path, secrets: list[dict[str, Any]]) -> list[str]:
    """Store each rendered Secret in podman's secret store under its name; the names."""
    names = []
    for secret in secrets:
        name = secret["metadata"]["name"]
        path = folder / f"secret-{name}.yaml"
        decoded = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
        path.write_text(yaml.safe_dump({**secret, "data": decoded}))
        podman("secret", "rm", name, check=False)
        podman("secret", "create", name, str(path))
        names.append(name)
    return names


def remove_leftovers(folder: Path, objects: list[dict[str, Any]] | None = None) -> None:
    """Remove the podman secrets and the volumes podman made for the ConfigMaps,
    Secrets and PersistentVolumeClaims among `objects` (default: those of every manifest written in `folder`)."""
    if objects is None:
        objects = [o for path in sorted(folder.glob("*.yaml")) for o in yaml.safe_load_all(path.read_text()) if o]
    for obj in objects:
        if obj.get("kind") not in ("ConfigMap", "Secret", "PersistentVolumeClaim"):
            continue
        name = obj["metadata"]["name"]
        if obj["kind"] == "Secret":
            podman("secret", "rm", name, check=False)
        podman("volume", "rm", "--force", name, check=False)


def for_host_network(deployment: dict[str, Any]) -> dict[str, Any]:
    """podman 4.3 refuses port mappings on the host network; there a container's `ports`
    only document what it listens on (the probes name the port number), so leave them out."""
    out = copy.deepcopy(deployment)
    for container in out["spec"]["template"]["spec"]["containers"]:
        container.pop("ports", None)
    return out


def job_as_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The Job's pod, to run once to completion (restartPolicy Never: a failure fails the test)."""
    spec = dict(job["spec"]["template"]["spec"], restartPolicy="Never")
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"], "labels": job["spec"]["template"]["metadata"]["labels"]},
            "spec": spec}


def pod_name(deployment: dict[str, Any]) -> str:
    """The pod podman made for a Deployment (`NAME-pod`, or `NAME-pod-0` in podman 4.3)."""
    prefix = f"{deployment['metadata']['name']}-pod"
    names = podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    found = [n for n in names if n == prefix or n.startswith(prefix + "-")]
    if len(found) != 1:
        raise AssertionError(f"expected one pod for {prefix}, found {found} among {names}")
    return found[0]


def container_name(pod: str, container: str) -> str:
    return f"{pod}-{container}"


def http_get(url: str, timeout_s: float = 3.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a local URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def wait_ready(port: int, what: str, timeout_s: float, alive: Any = None) -> None:
    deadline = time.monotonic() + timeout_s
    status, body = 0, ""
    while time.monotonic() < deadline:
        status, body = http_get(f"http://127.0.0.1:{port}/readyz")
        if status == 200:
            return
        if alive is not None:
            alive()
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout_s}s: {status} {body}")
