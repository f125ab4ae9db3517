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
import yaml

from shared.platform.kafka import topic_config
from shared.platform.kafka_access import Kind, Operation, Resource, grants_for
from shared.platform.topics import ALL_TOPICS
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


def keys_only(tmp: Path) -> Path:
    """What an operator must give besides the defaults: the public keys (from the
    production-like values, whose private halves nobody holds)."""
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    path = tmp / "keys.yaml"
    path.write_text(yaml.safe_dump({k: production[k] for k in ("trustedKeys", "sealingPublicKey")}))
    return path


def test_the_default_values_need_the_public_keys_and_then_render_objects_the_schemas_accept(
        tmp_path: Path) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION)
    assert result.returncode != 0, "production is the default: without trusted keys the pods could never start"
    assert "trustedKeys.service." in result.stderr, result.stderr
    objects = render("-f", str(keys_only(tmp_path)))
    kinds = validate(objects)
    assert sorted(set(kinds)) == ["ConfigMap", "Deployment", "Job", "NetworkPolicy", "PodDisruptionBudget",
                                  "Service", "ServiceAccount"]
    deployments = {d["metadata"]["name"] for d in by_kind(objects, "Deployment")}
    assert deployments == {"stafet-ingest", "stafet-verifier", "stafet-ledger", "stafet-frontdoor"}
    environment = {v["name"]: v.get("value") for d in by_kind(objects, "Deployment")
                   for v in d["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert environment["STAFET_ENV"] == "production"


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


def test_the_charts_topics_are_the_codes_topics() -> None:
    """shared/platform/topics.py decides every topic; the chart's KafkaTopics must follow it."""
    objects = render("-f", str(PRODUCTION_VALUES))
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(objects, "KafkaTopic")}
    assert set(topics) == {spec.name for spec in ALL_TOPICS}
    for spec in ALL_TOPICS:
        found = topics[spec.name]
        assert found["partitions"] == spec.partitions, spec.name
        assert (found["config"]["cleanup.policy"] == "compact") == spec.compacted, spec.name
        if spec.keep_forever:
            assert (found["config"]["retention.ms"], found["config"]["retention.bytes"]) == (-1, -1), spec.name
        # Signatures are judged at the broker's append time (shared/domain/key_lists.py).
        assert found["config"]["message.timestamp.type"] == topic_config(spec)["message.timestamp.type"], spec.name


def test_kafka_users_get_exactly_the_acls_of_shared_kafka_access() -> None:
    """Each KafkaUser's ACLs are grants_for(its kind): no more, no less (docs/security.md)."""
    users = by_kind(render("-f", str(PRODUCTION_VALUES)), "KafkaUser")
    kinds = {u["metadata"]["name"]: u["metadata"]["labels"]["app.kubernetes.io/component"] for u in users}
    assert kinds == {"stafet-ingest": "ingest", "stafet-verifier": "verifier", "stafet-ledger": "ledger",
                     "stafet-frontdoor": "frontdoor", "stafet-finance": "finance",
                     "stafet-operators": "operator", "stafet-institutions": "institution",
                     "stafet-investors": "investor"}
    resource_names = {Resource.TOPIC: "topic", Resource.GROUP: "group"}
    operation_names = {Operation.READ: "Read", Operation.WRITE: "Write", Operation.DESCRIBE: "Describe"}
    for user in users:
        acls = user["spec"]["authorization"]["acls"]
        assert all(acl["resource"]["patternType"] == "prefix" for acl in acls)
        found = sorted((acl["resource"]["type"], acl["resource"]["name"], op) for acl in acls for op in acl["operations"])
        kind = Kind(kinds[user["metadata"]["name"]])
        expected = sorted((resource_names[g.resource], g.prefix, operation_names[g.operation])
                          for g in grants_for(kind, "stafet"))
        assert found == expected, f"{user['metadata']['name']}: the chart's ACLs differ from grants_for({kind})"
    assert {k.value for k in Kind} == set(kinds.values()), "a principal kind without a KafkaUser"


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_secrets_only_as_files() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(pods) == 5
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
            assert not any("PASSWORD=" in str(variable.get("value")) or ":" in urlsplit_password(variable)
                           for variable in container.get("env", []))
            assert container["resources"]["limits"]
            assert container["resources"]["requests"]
        secret_volumes = [v for v in pod["volumes"] if "secret" in v]
        assert secret_volumes
        assert all(v["secret"]["defaultMode"] == 0o400 for v in secret_volumes)
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind(objects, "Deployment")}
    secrets = {name: {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
               for name, pod in deployments.items()}
    # Each service its own Kafka password, database password and keys: none sees another's.
    for volume in ("kafka", "database", "keys"):
        names = [found[volume] for found in secrets.values()]
        assert len(set(names)) == len(names), f"two services share their {volume} Secret: {names}"
    for name, pod in deployments.items():
        container = pod["containers"][0]
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert env["STAFET_ENV"] == "production"
        for setting in ("KAFKA_PASSWORD_FILE", "DATABASE_PASSWORD_FILE", "SIGNING_KEY_FILE"):
            mounted = [m["mountPath"] for m in container["volumeMounts"] if env[setting].startswith(m["mountPath"] + "/")]
            assert mounted, f"{name}: {setting}={env[setting]} is on no mounted volume"
        assert env["TRUSTED_KEYS_FILE"] == "/etc/stafet/trusted-keys.yaml"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    (config,) = by_kind(objects, "ConfigMap")
    trusted = yaml.safe_load(config["data"]["trusted-keys.yaml"])
    assert set(trusted["service"]) == {"ingest", "verifier", "ledger", "frontdoor"}


def urlsplit_password(variable: dict[str, Any]) -> str:
    """The password part of a URL-valued variable ('' when there is none)."""
    from urllib.parse import urlsplit

    value = str(variable.get("value", ""))
    return (urlsplit(value).password or "") if "://" in value else ""


def test_the_migration_job_runs_before_install_and_upgrade(tmp_path: Path) -> None:
    (job,) = by_kind(render("-f", str(keys_only(tmp_path))), "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "migrate"]
    env = {v["name"]: v["value"] for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"].startswith("postgresql://stafet_owner@"), "migrations run as the owner role"
    assert "KAFKA_USERNAME" not in env, "migrating needs no broker"


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
    ("services.frontdoor.kafkaUsr=x", "additional properties 'kafkaUsr' not allowed"),
    ("trustedKeys.service.ingest[0]=not-a-key", "/trustedKeys/service/ingest/0"),
    ("sealingPublicKey=", "sealingPublicKey: the front door seals CPR numbers"),
    ("keda.enabled=true", "keda.triggerAuthentication: the brokers require SASL"),
    ("strimzi.enabled=true,services.ledger.kafkaSecret=mine", "must be \"stafet-ledger\", the Secret Strimzi"),
])
def test_a_mistake_in_values_fails_the_install(setting: str, complaint: str, tmp_path: Path) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION,
                  "-f", str(keys_only(tmp_path)), "--set", setting)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_helm_lint_passes_with_default_and_production_values() -> None:
    for extra in (["-f", str(PRODUCTION_VALUES)], ["-f", str(PRODUCTION_VALUES), "--set", "strimzi.enabled=false"]):
        result = helm("lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION, *extra)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_crd_schema_refuses_a_misspelt_field(tmp_path: Path) -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    topic = copy.deepcopy(by_kind(objects, "KafkaTopic")[0])
    topic["spec"]["partitionz"] = topic["spec"].pop("partitions")
    with pytest.raises(AssertionError, match="partitionz"):
        validate([topic])
