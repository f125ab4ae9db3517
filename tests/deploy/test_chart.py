"""The Helm chart, rendered and validated offline: there is no API server here, so every
object is checked against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
an unknown field fails) and every custom resource against the CRD schema of the
operator version we target (deploy/helm/crd-schemas/, with unknown fields refused too,
as `kubectl apply --validate=strict` would)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.tools import CHART, CRD_SCHEMAS, KUBERNETES_VERSION, PRODUCTION_VALUES, helm, render

CORE_GROUPS = ("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1")


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(CRD_SCHEMAS.glob("*.json")):
        crd = json.loads(path.read_text())
        schemas[(crd["apiVersion"], crd["kind"])] = strict(crd["schema"])
    return schemas


def strict(schema: Any) -> Any:
    """Refuse fields a CRD does not declare (the API server would prune them silently)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    if "metadata" in out.get("properties", {}):
        out["properties"]["metadata"] = {"type": "object"}  # checked by the core schema of ObjectMeta below
    return out


def validate(objects: list[dict[str, Any]]) -> list[str]:
    """Validate every object; return the kinds seen."""
    kinds = []
    for obj in objects:
        kind, api_version = obj["kind"], obj["apiVersion"]
        name = obj["metadata"]["name"]
        if api_version in CORE_GROUPS:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                raise AssertionError(f"{kind}/{name}: {error.message} at {list(error.path)}") from error
        else:
            schema = crd_schemas().get((api_version, kind))
            assert schema is not None, f"{kind} {api_version}: no checked-in CRD schema (deploy/helm/crd-schemas)"
            try:
                jsonschema.Draft202012Validator(schema).validate(obj)
            except jsonschema.ValidationError as error:
                raise AssertionError(f"{kind}/{name}: {error.message} at {list(error.absolute_path)}") from error
            # The CRD schemas leave metadata open: check it as the core ObjectMeta.
            meta = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
            kubernetes_validate.validate(meta, KUBERNETES_VERSION, strict=True)
        kinds.append(kind)
    return kinds


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def test_the_default_values_render_objects_that_the_kubernetes_schemas_accept() -> None:
    objects = render()
    kinds = validate(objects)
    assert sorted(set(kinds)) == ["ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget",
                                  "Service", "ServiceAccount"]
    assert len(by_kind(objects, "Deployment")) == 3


def test_production_values_render_every_integration_and_each_object_passes_its_schema() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    kinds = validate(objects)
    for kind in ("KafkaTopic", "KafkaUser", "ScaledObject", "Cluster", "ScheduledBackup", "PrometheusRule"):
        assert kind in kinds, f"production values render no {kind}"
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(objects, "KafkaTopic")}
    assert topics["stafet.payments.v1"]["partitions"] == 1, "the ledger's journal is one partition"
    assert topics["stafet.contracts.v1"]["config"]["cleanup.policy"] == "compact"
    for name in ("stafet.transitions.v1", "stafet.payments.v1", "stafet.settlements.v1"):
        assert topics[name]["config"]["retention.ms"] == -1, f"{name} is a source of truth: kept forever"
    assert all(t["replicas"] == 3 for t in topics.values())
    assert all(t["config"]["min.insync.replicas"] == 2 for t in topics.values())
    scaled = {s["spec"]["scaleTargetRef"]["name"] for s in by_kind(objects, "ScaledObject")}
    assert scaled == {"stafet-ingest", "stafet-verifier"}, "the ledger is never autoscaled"


def test_kafka_users_get_only_the_topics_and_groups_their_work_needs() -> None:
    users = {u["metadata"]["name"]: u["spec"]["authorization"]["acls"] for u in
             by_kind(render("-f", str(PRODUCTION_VALUES)), "KafkaUser")}

    def grants(user: str) -> set[tuple[str, str, str]]:
        return {(acl["resource"]["type"], acl["resource"]["name"], op)
                for acl in users[user] for op in acl["operations"]}

    assert ("topic", "stafet.institution-events.v1", "Write") in grants("stafet-institutions")
    assert ("topic", "stafet.payments.v1", "Read") in grants("stafet-finance")
    assert ("topic", "stafet.settlements.v1", "Write") in grants("stafet-finance")
    assert ("topic", "stafet.payments.v1", "Write") not in grants("stafet-finance")
    assert ("topic", "stafet.contracts.v1", "Write") in grants("stafet-operators")
    assert ("topic", "stafet.institution-events.v1", "Read") not in grants("stafet-verifier"), \
        "only ingest may read the topic that carries sealed CPR numbers"
    assert ("group", "stafet-ingest", "Read") in grants("stafet-ingest")
    assert not any(op in ("All", "Alter", "Delete", "ClusterAction") for user in users for (_, _, op) in grants(user))


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_secrets_only_as_files() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(pods) == 4
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["runAsNonRoot"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert all("valueFrom" not in variable for variable in container.get("env", [])), \
                "secrets come as files, never as environment variables"
            assert container["resources"]["limits"]
            assert container["resources"]["requests"]
        secret_volumes = [v for v in pod["volumes"] if "secret" in v]
        assert secret_volumes
        assert all(v["secret"]["defaultMode"] == 0o400 for v in secret_volumes)
    deployments = {d["metadata"]["name"]: d for d in by_kind(objects, "Deployment")}
    ingest = deployments["stafet-ingest"]["spec"]["template"]["spec"]
    assert {"keys", "credentials"} <= {v["name"] for v in ingest["volumes"]}
    for name in ("stafet-verifier", "stafet-ledger"):
        volumes = {v["name"] for v in deployments[name]["spec"]["template"]["spec"]["volumes"]}
        assert "keys" not in volumes, f"{name} must not see ingest's keys"
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_the_migration_job_runs_before_install_and_upgrade() -> None:
    (job,) = by_kind(render(), "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]


def test_the_alerts_each_have_a_runbook_section_in_the_operations_guide() -> None:
    (rule,) = by_kind(render("-f", str(PRODUCTION_VALUES)), "PrometheusRule")
    guide = (CHART.parent.parent.parent / "docs" / "operations.md").read_text()
    alerts = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert len(alerts) >= 6
    for alert in alerts:
        assert f"### {alert}" in guide, f"docs/operations.md has no runbook for {alert}"


@pytest.mark.parametrize(("setting", "complaint"), [
    ("services.ingest.replicaz=3", "additional properties 'replicaz' not allowed"),
    ("services.ledger.replicas=2", "/services/ledger/replicas"),
    ("environment=prod", "/environment"),
    ("services.ingest.maxReplicas=7", "exceeds the 6 partitions"),
])
def test_a_mistake_in_values_fails_the_install(setting: str, complaint: str) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION, "--set", setting)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_helm_lint_passes_with_default_and_production_values() -> None:
    for extra in ([], ["-f", str(PRODUCTION_VALUES)]):
        result = helm("lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION, *extra)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_crd_schema_refuses_a_misspelt_field(tmp_path: Path) -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    topic = copy.deepcopy(by_kind(objects, "KafkaTopic")[0])
    topic["spec"]["partitionz"] = topic["spec"].pop("partitions")
    with pytest.raises(AssertionError, match="partitionz"):
        validate([topic])
