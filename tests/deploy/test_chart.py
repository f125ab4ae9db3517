"""The Helm chart, rendered and validated offline: there is no API server here, so every
object is checked against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
an unknown field fails) and every custom resource against the CRD schema of the
operator version we target (deploy/helm/crd-schemas/, with unknown fields refused too,
as `kubectl apply --validate=strict` would)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.platform.kafka import topic_config
from shared.platform.kafka_access import (
    LITERAL,
    PREFIXED,
    Kind,
    Operation,
    Resource,
    grants_for,
    tenant_grants,
    tenant_principal,
)
from shared.platform.topics import ALL_TOPICS, all_topics
from tests.deploy.helm_order import position, sequence
from tests.deploy.tools import (
    CHART,
    CRD_SCHEMAS,
    KUBERNETES_VERSION,
    PRODUCTION_VALUES,
    dashboard_metric_names,
    helm,
    render,
)

CORE_GROUPS = ("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1")
TENANTS_FILE = CHART.parents[2] / "examples" / "tenants.yaml"


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
    """What an operator must give besides the defaults: the root keys, the signed key list
    and the sealing key (from the production-like values, whose private halves nobody holds)."""
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    path = tmp / "keys.yaml"
    path.write_text(yaml.safe_dump({"trust": {**production["trust"], "revocationList": ""},
                                    "sealingPublicKey": production["sealingPublicKey"]}))
    return path


def test_the_default_values_need_the_public_keys_and_then_render_objects_the_schemas_accept(
        tmp_path: Path) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION)
    assert result.returncode != 0, "production is the default: without trusted keys the pods could never start"
    assert "trust.rootKeys and trust.signedKeyList: production needs" in result.stderr, result.stderr
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
    for kind in ("KafkaTopic", "KafkaUser", "ScaledObject", "Cluster", "ScheduledBackup", "ObjectStore",
                 "PrometheusRule", "ServiceMonitor", "Ingress"):
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


@pytest.mark.parametrize("tenants", [(), ("sonderborg-kommune", "aabenraa-kommune")])
def test_the_charts_topics_are_the_codes_topics(tenants: tuple[str, ...]) -> None:
    """shared/platform/topics.py decides every topic; the chart's KafkaTopics must follow it,
    with a tenants file each tenant's own contracts and settlements topics too."""
    objects = render("-f", str(PRODUCTION_VALUES), *(("--set-file", f"tenancy.tenantsFile={TENANTS_FILE}")
                                                     if tenants else ()))
    topics = {t["spec"]["topicName"]: t["spec"] for t in by_kind(objects, "KafkaTopic")}
    specs = all_topics("stafet", tenants)
    assert set(topics) == {spec.name for spec in specs}
    assert len(specs) == len(ALL_TOPICS) + 2 * len(tenants)
    for spec in specs:
        found = topics[spec.name]
        assert found["partitions"] == spec.partitions, spec.name
        assert (found["config"]["cleanup.policy"] == "compact") == spec.compacted, spec.name
        if spec.keep_forever:
            assert (found["config"]["retention.ms"], found["config"]["retention.bytes"]) == (-1, -1), spec.name
        # Signatures are judged at the broker's append time (shared/domain/key_lists.py).
        assert found["config"]["message.timestamp.type"] == topic_config(spec)["message.timestamp.type"], spec.name


def test_kafka_users_get_exactly_the_acls_of_shared_kafka_access(tmp_path: Path) -> None:
    """Each KafkaUser's ACLs are grants_for(its kind): no more, no less (docs/security.md);
    each tenant's own operator and finance logins tenant_grants (docs/tenancy.md)."""
    users = by_kind(render("-f", str(PRODUCTION_VALUES), "--set-file", f"tenancy.tenantsFile={TENANTS_FILE}"),
                    "KafkaUser")
    kinds = {u["metadata"]["name"]: u["metadata"]["labels"]["app.kubernetes.io/component"] for u in users}
    tenants = ("sonderborg-kommune", "aabenraa-kommune")
    assert kinds == {"stafet-ingest": "ingest", "stafet-verifier": "verifier", "stafet-ledger": "ledger",
                     "stafet-frontdoor": "frontdoor", "stafet-finance": "finance",
                     "stafet-operators": "operator", "stafet-institutions": "institution",
                     "stafet-investors": "investor", "stafet-auditors": "auditor",
                     **{tenant_principal(kind, t): kind.value for t in tenants for kind in (Kind.OPERATOR, Kind.FINANCE)}}
    resource_names = {Resource.TOPIC: "topic", Resource.GROUP: "group"}
    operation_names = {Operation.READ: "Read", Operation.WRITE: "Write", Operation.DESCRIBE: "Describe"}
    pattern_names = {PREFIXED: "prefix", LITERAL: "literal"}
    for user in users:
        acls = user["spec"]["authorization"]["acls"]
        found = sorted((acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
                       for acl in acls for op in acl["operations"])
        kind = Kind(kinds[user["metadata"]["name"]])
        tenant = user["metadata"]["labels"].get("stafet.io/tenant")
        grants = tenant_grants(kind, "stafet", tenant) if tenant else grants_for(kind, "stafet")
        expected = sorted((resource_names[g.resource], g.prefix, pattern_names[g.pattern], operation_names[g.operation])
                          for g in grants)
        assert found == expected, f"{user['metadata']['name']}: the chart's ACLs differ from the code's ({kind})"
    assert {k.value for k in Kind} == set(kinds.values()), "a principal kind without a KafkaUser"
    # A tenant id the chart cannot name a KafkaUser after is refused.
    bad = yaml.safe_load(TENANTS_FILE.read_text())
    bad["tenants"][0]["id"] = "Sonderborg_Kommune"
    with pytest.raises(AssertionError, match='tenant "Sonderborg_Kommune": its Kafka users and topics need a lower-case'):
        render("-f", str(PRODUCTION_VALUES), values={"tenancy": {"tenantsFile": yaml.safe_dump(bad)}}, tmp=tmp_path)


def test_every_pod_runs_as_non_root_on_a_read_only_root_with_secrets_only_as_files() -> None:
    # With tenants and their roles' passwords: the tenant-roles Job too.
    objects = render("-f", str(PRODUCTION_VALUES), "--set-file", f"tenancy.tenantsFile={TENANTS_FILE}",
                     "--set", "tenancy.databaseRoles.passwordsSecret=tenant-db")
    pods = [o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "Job")]
    assert len(pods) == 6
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
    (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "stafet-config"]
    trusted = yaml.safe_load(config["data"]["trusted-keys.yaml"])
    assert trusted["kind"] == "stafet_key_list", "production values trust a signed key list"
    assert {k["principal"] for k in trusted["keys"]} >= {f"service:{s}" for s in deployments_of(objects)}


def deployments_of(objects: list[dict[str, Any]]) -> set[str]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in by_kind(objects, "Deployment")}


def urlsplit_password(variable: dict[str, Any]) -> str:
    """The password part of a URL-valued variable ('' when there is none)."""
    from urllib.parse import urlsplit

    value = str(variable.get("value", ""))
    return (urlsplit(value).password or "") if "://" in value else ""


def test_with_its_own_database_the_migration_runs_before_anything_on_install_and_upgrade(tmp_path: Path) -> None:
    """A database of the operator's: it exists before the release, so the schema is
    migrated before any object of the release is applied, and before an upgrade rolls."""
    objects = render("-f", str(keys_only(tmp_path)), "--set", "database.host=db.example.org",
                     "--set", "networkPolicy.egressCIDRs[0]=10.1.0.0/16")
    (job,) = by_kind(objects, "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][:2] == ["db", "migrate"]
    env = {v["name"]: v["value"] for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"].startswith("postgresql://stafet_owner@db.example.org:"), "migrations run as the owner"
    assert "KAFKA_USERNAME" not in env, "migrating needs no broker"
    for action in ("install", "upgrade"):
        steps = sequence(objects, action)
        migrate = position(steps, "Job", "stafet-migrate")
        assert steps[migrate].phase == f"pre-{action}"
        assert all(position(steps, "Deployment", d["metadata"]["name"]) > migrate
                   for d in by_kind(objects, "Deployment"))


def test_with_cloudnativepg_the_database_exists_before_the_migration_waits_for_it_on_install() -> None:
    """On a real API server Helm runs pre-install hooks before it creates the release's
    objects; the CloudNativePG Cluster is one of them. So the migration must come after
    the Cluster on install (post-install, waiting for it to answer), and before the new
    pods on upgrade (pre-upgrade), when the Cluster exists already."""
    objects = render("-f", str(PRODUCTION_VALUES))
    (job,) = by_kind(objects, "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["db", "migrate"]
    assert "--wait-s" in args
    assert int(args[args.index("--wait-s") + 1]) >= 60, "it waits for the new cluster"
    install = sequence(objects, "install")
    cluster = position(install, "Cluster", "stafet-db")
    migrate = position(install, "Job", "stafet-migrate")
    assert install[cluster].phase == "resources"
    assert migrate > cluster, [(s.phase, s.kind, s.name) for s in install]
    assert install[migrate].phase == "post-install"
    # What the Job and the Cluster need from the release exists before them.
    assert position(install, "NetworkPolicy") < migrate
    upgrade = sequence(objects, "upgrade")
    migrate = position(upgrade, "Job", "stafet-migrate")
    assert upgrade[migrate].phase == "pre-upgrade"
    assert all(position(upgrade, "Deployment", d["metadata"]["name"]) > migrate for d in by_kind(objects, "Deployment"))
    # Secrets the chart makes (tests and trials) are hooks that come before the migration.
    with_secrets = render("-f", str(PRODUCTION_VALUES), "--set", "secrets.create=true",
                          "--set", "secrets.data.stafet-db-owner.password=x")
    for action in ("install", "upgrade"):
        steps = sequence(with_secrets, action)
        assert position(steps, "Secret", "stafet-db-owner") < position(steps, "Job", "stafet-migrate")


def test_with_tenants_a_job_after_the_migration_gives_each_tenants_database_roles_their_rows() -> None:
    """`stafet db tenants` runs as a hook after the migration on install and upgrade, as
    the owner, with this release's tenants file; the owner gets CREATEROLE (CloudNativePG)
    only when the chart is given the roles' passwords to create them with."""
    tenants = ("--set-file", f"tenancy.tenantsFile={TENANTS_FILE}")
    objects = render("-f", str(PRODUCTION_VALUES), *tenants, "--set", "tenancy.databaseRoles.passwordsSecret=tenant-db")
    validate(objects)
    (job,) = [j for j in by_kind(objects, "Job") if j["metadata"]["name"] == "stafet-tenant-roles"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["db", "tenants", "--password-dir", "/var/run/secrets/stafet/tenant-roles"]
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["TENANTS_FILE"] == "/etc/stafet/tenants.yaml"
    assert env["DATABASE_URL"].startswith("postgresql://stafet_owner@"), "it grants on the owner's tables"
    assert "KAFKA_USERNAME" not in env
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tenant-roles"] == "/var/run/secrets/stafet/tenant-roles"
    assert volumes["tenant-roles"]["secret"]["secretName"] == "tenant-db"
    assert volumes["config"]["configMap"]["name"] == "stafet-config"
    (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "stafet-config"]
    assert yaml.safe_load(config["data"]["tenants.yaml"]) == yaml.safe_load(TENANTS_FILE.read_text())
    for action in ("install", "upgrade"):
        steps = sequence(objects, action)
        roles, migrate = position(steps, "Job", "stafet-tenant-roles"), position(steps, "Job", "stafet-migrate")
        assert roles > migrate, steps
        assert roles > position(steps, "ConfigMap", "stafet-config"), steps
        assert steps[roles].phase == f"post-{action}"
    (cluster,) = by_kind(objects, "Cluster")
    managed = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert managed["stafet_owner"]["createrole"] is True
    assert not any(r.get("createrole") for name, r in managed.items() if name != "stafet_owner")
    # Without the passwords nothing is created: the roles must exist, and the owner gets no CREATEROLE.
    objects = render("-f", str(PRODUCTION_VALUES), *tenants)
    (job,) = [j for j in by_kind(objects, "Job") if j["metadata"]["name"] == "stafet-tenant-roles"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "tenants"]
    (cluster,) = by_kind(objects, "Cluster")
    assert not any(r.get("createrole") for r in cluster["spec"]["managed"]["roles"])
    # No tenants file, or turned off: no Job.
    for extra in ((), (*tenants, "--set", "tenancy.databaseRoles.enabled=false")):
        objects = render("-f", str(PRODUCTION_VALUES), *extra)
        assert [j["metadata"]["name"] for j in by_kind(objects, "Job")] == ["stafet-migrate"]


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
    ("trust.rootKeys[0]=not-a-key", "/trust/rootKeys/0"),
    ("trust.allowUnsignedTrustedKeys=yes", "/trust/allowUnsignedTrustedKeys"),
    ("services.frontdoor.reanchorDecision=x", "/services/frontdoor/reanchorDecision"),
    ("sealingPublicKey=", "sealingPublicKey: the front door seals CPR numbers"),
    ("keda.enabled=true", "keda.triggerAuthentication: the brokers require SASL"),
    ("strimzi.enabled=true,services.ledger.kafkaSecret=mine", "must be \"stafet-ledger\", the Secret Strimzi"),
    ("services.ingest.httpPort=8080", "/services/ingest/httpPort"),
    ("nodeSelectr.disk=ssd", "additional properties 'nodeSelectr' not allowed"),
    ("podLabels.app\\.kubernetes\\.io/name=other", "invalid propertyName 'app.kubernetes.io/name'"),
    ("serviceMonitor.enabled=true,podMonitor.enabled=true", "choose one, or Prometheus scrapes every pod twice"),
    ("ingress.enabled=true", "ingress.hosts: at least one host"),
    ("database.host=db.example.org", "networkPolicy: database.host is a database outside"),
    ("cloudnativepg.enabled=true,cloudnativepg.recovery.enabled=true,cloudnativepg.recovery.sourceClusterName=stafet-db",
     "a restore is a new cluster"),
    ("cloudnativepg.backup.schedule=0 2 * * *", "/cloudnativepg/backup/schedule"),
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


def test_the_standard_knobs_are_accepted_and_reach_every_pod_global_and_per_service(tmp_path: Path) -> None:
    """What operators expect of a chart: --set imagePullSecrets, nodeSelector, tolerations,
    affinity, priorityClassName, pod labels and annotations, extra env and volumes, the
    service account; global values for every pod (the migration Job too), each service's
    own merged in (maps), appended (lists) or replacing (affinity, priority class)."""
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION, "-f", str(keys_only(tmp_path)),
                  "--set", "imagePullSecrets[0].name=regcred", "--set", "nodeSelector.disk=ssd",
                  "--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists")
    assert result.returncode == 0, result.stderr
    objects = render("-f", str(PRODUCTION_VALUES))
    validate(objects)
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    pods = {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] in ("Deployment", "Job")}
    assert set(pods) == {"stafet-ingest", "stafet-verifier", "stafet-ledger", "stafet-frontdoor", "stafet-migrate"}
    for name, template in pods.items():
        spec, container = template["spec"], template["spec"]["containers"][0]
        own = production["services"].get(name.removeprefix("stafet-"), {})
        assert spec["imagePullSecrets"] == [{"name": "regcred"}], name
        assert spec["nodeSelector"] == {**production["nodeSelector"], **own.get("nodeSelector", {})}, name
        assert spec["tolerations"] == production["tolerations"] + own.get("tolerations", []), name
        assert spec["affinity"] == own.get("affinity", production["affinity"]), name
        assert spec["priorityClassName"] == own.get("priorityClassName", production["priorityClassName"]), name
        labels, annotations = template["metadata"]["labels"], template["metadata"].get("annotations", {})
        assert labels.items() >= {**production["podLabels"], **own.get("podLabels", {})}.items(), name
        assert annotations.items() >= {**production["podAnnotations"], **own.get("podAnnotations", {})}.items(), name
        env = [v for v in container["env"] if v["name"] in {e["name"] for e in production["extraEnv"] + own.get("extraEnv", [])}]
        assert env == production["extraEnv"] + own.get("extraEnv", []), name
        assert {"name": "corporate-ca", "configMap": {"name": "corporate-ca"}} in spec["volumes"], name
        assert production["extraVolumeMounts"][0] in container["volumeMounts"], name
        if name != "stafet-migrate":
            assert spec["serviceAccountName"] == "stafet-workload", name
    (account,) = by_kind(objects, "ServiceAccount")
    assert account["metadata"]["name"] == "stafet-workload"
    assert account["automountServiceAccountToken"] is False
    verifier = pods["stafet-verifier"]["spec"]["containers"][0]
    assert verifier["resources"] == production["services"]["verifier"]["resources"]


def test_the_readme_values_table_is_generated_from_the_schema_and_describes_every_key() -> None:
    generator = CHART.parent / "values_table.py"
    result = subprocess.run([sys.executable, str(generator), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    for key in schema["properties"]:
        if key != "services":
            assert f"| `{key}" in readme, f"README.md's values table lacks {key}"
    for key in schema["$defs"]["service"]["properties"]:
        assert f"| `services.<name>.{key}` |" in readme, key

    def undescribed(node: Any, path: str) -> list[str]:
        if not isinstance(node, dict):
            return []
        missing = [] if "description" in node or not path.count("/properties/") else [path]
        missing = [] if path.endswith(("/publicKey", "/name", "/role")) else missing
        for key, child in node.get("properties", {}).items():
            if child is not False and isinstance(child, dict) and not path.endswith("services"):
                missing += undescribed(child, f"{path}/properties/{key}")
        return missing

    assert undescribed(schema, "") == [], "schema keys without a description (the README's table shows them)"


def test_backups_go_through_the_barman_cloud_plugin_with_an_object_store_and_a_plugin_schedule() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    (cluster,) = by_kind(objects, "Cluster")
    (store,) = by_kind(objects, "ObjectStore")
    (schedule,) = by_kind(objects, "ScheduledBackup")
    assert "backup" not in cluster["spec"], "the in-tree barmanObjectStore is deprecated (CloudNativePG 1.26)"
    (plugin,) = cluster["spec"]["plugins"]
    assert plugin == {"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                      "parameters": {"barmanObjectName": store["metadata"]["name"]}}
    assert store["spec"]["configuration"]["destinationPath"] == "s3://stafet-backups/prod"
    assert store["spec"]["retentionPolicy"] == "30d"
    assert store["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert schedule["spec"]["method"] == "plugin"
    assert schedule["spec"]["pluginConfiguration"] == {"name": plugin["name"]}
    assert schedule["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert "initdb" in cluster["spec"]["bootstrap"]


def test_a_restore_is_a_new_cluster_bootstrapped_from_the_object_store_and_the_services_follow_it() -> None:
    """docs/operations.md, "Restore": the same chart, a new cluster name and recovery
    values; the manifest it renders passes the CloudNativePG and plugin schemas."""
    target = "2026-11-23 14:05:00+00"
    objects = render("-f", str(PRODUCTION_VALUES), "--set", "cloudnativepg.clusterName=stafet-db-2",
                     "--set", "cloudnativepg.recovery.enabled=true",
                     "--set", "cloudnativepg.recovery.sourceClusterName=stafet-db",
                     "--set-string", f"cloudnativepg.recovery.targetTime={target}")
    validate(objects)
    (cluster,) = by_kind(objects, "Cluster")
    (store,) = by_kind(objects, "ObjectStore")
    spec = cluster["spec"]
    assert cluster["metadata"]["name"] == "stafet-db-2"
    assert "initdb" not in spec["bootstrap"]
    recovery = spec["bootstrap"]["recovery"]
    assert recovery["recoveryTarget"] == {"targetTime": target}
    assert (recovery["owner"], recovery["database"]) == ("stafet_owner", "stafet")
    (source,) = [c for c in spec["externalClusters"] if c["name"] == recovery["source"]]
    assert source["plugin"] == {"name": "barman-cloud.cloudnative-pg.io",
                                "parameters": {"barmanObjectName": store["metadata"]["name"], "serverName": "stafet-db"}}
    # The restored cluster archives to the same store under its own name: the backup it
    # came from is never overwritten.
    assert spec["plugins"][0]["parameters"] == {"barmanObjectName": store["metadata"]["name"]}
    for deployment in by_kind(objects, "Deployment"):
        env = {v["name"]: v.get("value") for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "@stafet-db-2-rw:" in env["DATABASE_URL"], deployment["metadata"]["name"]
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "stafet"]
    assert {"podSelector": {"matchLabels": {"cnpg.io/cluster": "stafet-db-2"}}} in policy["spec"]["egress"][2]["to"]


def test_prometheus_operator_scrapes_the_metrics_ports_and_never_the_front_doors_public_port() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    (monitor,) = by_kind(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    services = by_kind(objects, "Service")
    assert len(services) == 4
    for service in services:
        selected = monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert selected, service["metadata"]["name"]
        assert "metrics" in [p["name"] for p in service["spec"]["ports"]], service["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0] for d in by_kind(objects, "Deployment")}
    for name, container in deployments.items():
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        env = {v["name"]: v.get("value") for v in container["env"]}
        assert int(env["HTTP_PORT"]) == ports["metrics"], name
        assert container["readinessProbe"]["httpGet"]["port"] == ports["metrics"], name
    door = {v["name"]: v.get("value") for v in deployments["stafet-frontdoor"]["env"]}
    assert door["FRONT_DOOR_PORT"] != door["HTTP_PORT"], "/metrics off the public API port"
    assert door["FRONT_DOOR_USERS_FILE"] == "/var/run/secrets/stafet/keys/users.yaml", "portalUsers: the accounts"
    pod_monitored = render("-f", str(PRODUCTION_VALUES), "--set", "serviceMonitor.enabled=false",
                           "--set", "podMonitor.enabled=true")
    validate(pod_monitored)
    (pod_monitor,) = by_kind(pod_monitored, "PodMonitor")
    assert [e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    assert not by_kind(pod_monitored, "ServiceMonitor")


def test_the_grafana_dashboard_ships_as_a_configmap_with_the_sidecar_label_and_queries_stafet_metrics() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    (dashboard,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "stafet-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Stafet"}
    board = json.loads(dashboard["data"]["stafet.json"])
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert panels
    assert all(p["targets"] for p in panels)
    names = dashboard_metric_names(board)
    for wanted in ("stafet_consumer_lag_records", "stafet_dead_letters_total", "stafet_outbox_depth_records",
                   "stafet_ledger_chain_length_entries", "stafet_ledger_verify_ok", "stafet_http_requests_total",
                   "process_resident_memory_bytes", "stafet_batch_processing_seconds_bucket"):
        assert wanted in names, f"the dashboard has no panel on {wanted}"


def test_egress_reaches_only_dns_the_brokers_and_the_database_pods_or_configured_cidrs(tmp_path: Path) -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "stafet"]
    rules = policy["spec"]["egress"]
    dns, kafka, database, otel = rules
    assert {p["port"] for p in dns["ports"]} == {53}
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert {p["port"] for p in kafka["ports"]} == {9092, 9093}
    assert kafka["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}},
         "podSelector": {"matchLabels": {"strimzi.io/cluster": "stafet", "strimzi.io/kind": "Kafka",
                                         "strimzi.io/name": "stafet-kafka"}}},
        {"ipBlock": {"cidr": "10.40.0.0/16"}}]
    assert [p["port"] for p in database["ports"]] == [5432]
    assert database["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "stafet-db"}}},
                              {"ipBlock": {"cidr": "10.40.0.0/16"}}]
    assert [p["port"] for p in otel["ports"]] == [4318]
    # Peers of the operator's own replace the operators' labels.
    custom = render("-f", str(keys_only(tmp_path)), "--set", "database.host=pg.example.org",
                    "--set", "networkPolicy.postgresqlPeers[0].podSelector.matchLabels.app=pg",
                    "--set", "networkPolicy.kafkaPeers[0].podSelector.matchLabels.app=kafka")
    validate(custom)
    (policy,) = [p for p in by_kind(custom, "NetworkPolicy") if p["metadata"]["name"] == "stafet"]
    dns, kafka, database = policy["spec"]["egress"]
    assert "to" not in dns, "without dnsPeers: the resolver wherever it runs"
    assert kafka["to"] == [{"podSelector": {"matchLabels": {"app": "kafka"}}}]
    assert database["to"] == [{"podSelector": {"matchLabels": {"app": "pg"}}}]


def test_the_ingress_routes_the_front_doors_api_and_portal_with_tls() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    (ingress,) = by_kind(objects, "Ingress")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert ingress["spec"]["tls"] == [{"secretName": "stafet-events-tls", "hosts": ["events.stafet.example.org"]}]
    (rule,) = ingress["spec"]["rules"]
    paths = rule["http"]["paths"]
    assert [p["path"] for p in paths] == ["/v1", "/portal"], "the API and the institutions' portal"
    assert len({json.dumps(p["backend"], sort_keys=True) for p in paths}) == 1
    backend = paths[0]["backend"]["service"]
    (door,) = [s for s in by_kind(objects, "Service") if s["metadata"]["name"] == backend["name"]]
    (port,) = [p for p in door["spec"]["ports"] if p["name"] == backend["port"]["name"]]
    deployment = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "stafet-frontdoor")
    env = {v["name"]: v.get("value") for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert port["port"] == int(env["FRONT_DOOR_PORT"]), "the Ingress reaches the API, not /metrics"


def test_notes_tell_the_operator_what_was_installed_and_where_to_look(tmp_path: Path) -> None:
    # `helm install --dry-run` needs an API server and `helm template` leaves NOTES.txt
    # out, so a copy of the chart gets a template that includes the notes as a string.
    chart = tmp_path / "stafet"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-probe.yaml").write_text(
        'notes: {{ include "stafet/templates/NOTES.txt" . | toJson }}\n')
    result = helm("template", "stafet", str(chart), "--kube-version", KUBERNETES_VERSION, "--namespace", "stafet",
                  "-f", str(PRODUCTION_VALUES), "--show-only", "templates/notes-probe.yaml")
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["notes"]
    for text in ("post-install hook", "rollout status", "https://events.stafet.example.org/v1/events",
                 "a ServiceMonitor scrapes them", "ObjectStore stafet-backups", "docs/operations.md"):
        assert text in notes, f"NOTES.txt lacks {text!r}:\n{notes}"
