"""The order in which Helm 3 applies a rendered chart, for tests that have no API server.

Helm's rules (helm.sh/helm/v3 at the pinned version: pkg/action/install.go, upgrade.go,
hooks.go and pkg/releaseutil/kind_sorter.go), restated here as data and a few lines:

- install: the `pre-install` hooks, then every object that is not a hook, then the
  `post-install` hooks; an upgrade the same with `pre-upgrade` and `post-upgrade`.
- Hooks of one event run one at a time, by `helm.sh/hook-weight` (then name), each
  waited for (a Job until it completes) before the next.
- The release's own objects are sent in the order of their kind (`INSTALL_ORDER`); kinds
  Helm does not know, such as every custom resource, come last, alphabetically by kind.
  Helm waits for none of them before the post-install hooks unless --wait is given (and
  then only for the kinds it knows: Deployments, Jobs, ..., never a custom resource).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
    "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
    "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
)


@dataclass(frozen=True)
class Step:
    phase: str  # "pre-install", "resources", "post-install", ...
    kind: str
    name: str


def hook_events(obj: dict[str, Any]) -> list[str]:
    annotations = obj["metadata"].get("annotations") or {}
    return [e.strip() for e in annotations.get("helm.sh/hook", "").split(",") if e.strip()]


def _kind_rank(kind: str) -> tuple[int, str]:
    return (INSTALL_ORDER.index(kind), "") if kind in INSTALL_ORDER else (len(INSTALL_ORDER), kind)


def _hooks(objects: list[dict[str, Any]], event: str) -> list[Step]:
    found = [o for o in objects if event in hook_events(o)]
    # Helm sorts hooks by kind first (stable), then by weight and name (stable).
    by_kind = sorted(found, key=lambda o: _kind_rank(o["kind"]))
    ordered = sorted(by_kind, key=lambda o: (int((o["metadata"].get("annotations") or {})
                                                 .get("helm.sh/hook-weight", "0")), o["metadata"]["name"]))
    return [Step(event, o["kind"], o["metadata"]["name"]) for o in ordered]


def sequence(objects: list[dict[str, Any]], action: str) -> list[Step]:
    """What Helm applies, in order, for `install` or `upgrade` of these rendered objects."""
    if action not in ("install", "upgrade"):
        raise ValueError(action)
    resources = sorted((o for o in objects if not hook_events(o)), key=lambda o: _kind_rank(o["kind"]))
    return [*_hooks(objects, f"pre-{action}"),
            *(Step("resources", o["kind"], o["metadata"]["name"]) for o in resources),
            *_hooks(objects, f"post-{action}")]


def position(steps: list[Step], kind: str, name: str | None = None) -> int:
    for index, step in enumerate(steps):
        if step.kind == kind and (name is None or step.name == name):
            return index
    raise AssertionError(f"no {kind} {name or ''} in {[(s.phase, s.kind, s.name) for s in steps]}")
