"""The scheduled checks as the chart installs them (docs/operations.md, "Scheduled
checks"): `stafet audit` and `stafet ledger verify` as CronJobs of the project's image,
with the auditor's read-only Kafka user, a database role the migrations grant nothing but
SELECT, and the services' trust files; the checkpoints exported to a volume and verified
against; a failing run an alert. The args are parsed by the CLI itself, the roles' grants
read from the migrations, the users' ACLs from the rendered KafkaUsers, so none of it is
taken on trust from the template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from cli.main import app
from shared.platform.settings import REPO_ROOT
from tests.deploy.test_chart import by_kind, keys_only, validate
from tests.deploy.tools import CHART, KUBERNETES_VERSION, PRODUCTION_VALUES, helm, render

DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
PRODUCTION = yaml.safe_load(PRODUCTION_VALUES.read_text())
CRONJOBS = {"stafet-audit": "audit", "stafet-ledger-verify": "ledgerVerify"}
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "ALL")


def pod_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    return dict(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def containers_of(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in container["env"]}


def parsed(args: list[str]) -> dict[str, Any]:
    """The container's args as the image's `stafet` reads them: an unknown command or
    option fails here, as it would in the pod."""
    command: Any = typer.main.get_command(app)  # typer's own click: groups have `commands`
    words = list(args)
    while hasattr(command, "commands"):
        command = command.commands[words.pop(0)]
    return dict(command.make_context("stafet", words).params)


def role_grants(role: str) -> list[str]:
    """Every privilege the migrations grant `role`, statement by statement."""
    grants = []
    for path in sorted(REPO_ROOT.glob("services/*/sql/*.sql")):
        text = re.sub(r"--[^\n]*", "", path.read_text())
        for statement in text.split(";"):
            found = re.match(r"\s*GRANT\s+(.*?)\s+ON\s+.*\bTO\s+(.*)$", statement, re.S | re.I)
            if found and role in re.split(r"[\s,]+", found.group(2)):
                grants.append(f"{path.name}: {' '.join(found.group(1).split())}")
    return grants


def writing_roles() -> set[str]:
    """The roles that may write: each service's, the owner's and finance's (its payout records)."""
    granted = {DEFAULTS["migration"]["databaseUser"]} | {s["databaseUser"] for s in DEFAULTS["services"].values()}
    return granted | {"stafet_finance"}


def test_the_reading_role_is_granted_nothing_but_select_and_the_writers_are_what_the_chart_refuses() -> None:
    role = DEFAULTS["audit"]["databaseUser"]
    assert role == DEFAULTS["ledgerVerify"]["databaseUser"] == "stafet_operator"
    grants = role_grants(role)
    assert len(grants) >= 5, grants  # the parse finds the operator's grants at all
    assert all(g.split(": ", 1)[1].upper().startswith("SELECT") and not any(w in g.upper() for w in WRITES)
               for g in grants), grants
    for writer in writing_roles() - {DEFAULTS["migration"]["databaseUser"]}:
        assert any(w in g.upper() for g in role_grants(writer) for w in WRITES), f"{writer} writes nothing?"


def test_production_values_run_both_checks_read_only_with_the_services_trust_and_a_failing_run_alerts() -> None:
    objects = render("-f", str(PRODUCTION_VALUES))
    kinds = validate(objects)
    assert {"CronJob", "PersistentVolumeClaim", "Database"} <= set(kinds)
    cronjobs = {c["metadata"]["name"]: c for c in by_kind(objects, "CronJob")}
    assert set(cronjobs) == set(CRONJOBS)
    (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "stafet-config"]
    auditors = {u["metadata"]["name"]: u for u in by_kind(objects, "KafkaUser")
                if u["metadata"]["labels"]["app.kubernetes.io/component"] == "auditor"}
    (ledger,) = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == "stafet-ledger"]
    service_pod = ledger["spec"]["template"]["spec"]
    (policy,) = [p for p in by_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "stafet"]
    for name, cronjob in cronjobs.items():
        spec = cronjob["spec"]
        assert spec["schedule"] == PRODUCTION[CRONJOBS[name]]["schedule"]
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = pod_of(cronjob)
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"] == service_pod["securityContext"], name
        assert pod["automountServiceAccountToken"] is False
        labels = cronjob["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items(), "the NetworkPolicy holds it"
        mounts_of = {v["name"]: v for v in pod["volumes"]}
        assert all(v["secret"]["defaultMode"] == 0o400 for v in mounts_of.values() if "secret" in v)
        for container in containers_of(pod):
            assert container["image"] == "registry.example.org/stafet/stafet:0.1.0"
            assert container["securityContext"] == service_pod["containers"][0]["securityContext"], name
            assert all("valueFrom" not in v for v in container["env"]), "secrets are files"
            env = env_of(container)
            url = urlsplit(env["DATABASE_URL"])
            assert url.username not in writing_roles(), f"{name} logs in as {url.username}, which writes"
            assert url.username == "stafet_operator"
            assert url.password is None
            assert url.path == "/stafet", "it reads the ledger's database"
            user = auditors[env["KAFKA_USERNAME"]]
            operations = {op for acl in user["spec"]["authorization"]["acls"] for op in acl["operations"]}
            assert operations == {"Read"}, f"{env['KAFKA_USERNAME']} may {operations}"
            assert env["STAFET_ENV"] == "production"
            assert env["TRUST_ROOT_KEYS"] == ",".join(PRODUCTION["trust"]["rootKeys"])
            for setting in ("TRUSTED_KEYS_FILE", "REVOKED_KEYS_FILE", "INSTITUTIONS_FILE"):
                assert env[setting].startswith("/etc/stafet/")
                assert env[setting].rpartition("/")[2] in config["data"], setting
            mounted = {m["name"]: m for m in container["volumeMounts"]}
            for setting in ("KAFKA_PASSWORD_FILE", "DATABASE_PASSWORD_FILE", "KAFKA_CA_FILE"):
                (volume,) = [m for m in mounted.values() if env[setting].startswith(m["mountPath"] + "/")]
                assert volume["readOnly"] is True
            assert mounts_of["database"]["secret"]["secretName"] == production_value(CRONJOBS[name], "databaseSecret")
            assert mounts_of["kafka"]["secret"]["secretName"] == env["KAFKA_USERNAME"], "Strimzi's Secret of the user"
            assert "keys" not in mounted, "a check signs nothing: no service's keys"

    audit = cronjobs["stafet-audit"]
    (container,) = containers_of(pod_of(audit))
    options = parsed(container["args"])
    scratch = urlsplit(options["scratch_url"])
    assert (scratch.username, scratch.path, scratch.password) == ("stafet_audit", "/stafet_audit", None)
    assert scratch.hostname == urlsplit(env_of(container)["DATABASE_URL"]).hostname, "on the ledger's server"
    assert str(options["scratch_password_file"]).startswith(
        next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "scratch") + "/")
    assert {v["name"]: v for v in pod_of(audit)["volumes"]}["scratch"]["secret"]["secretName"] == "stafet-db-audit"
    assert sorted(p.name for p in options["contract"]) == sorted(PRODUCTION["contracts"]), "the verifier's contracts"
    # CloudNativePG makes the scratch database, owned by a managed role of its own.
    (database,) = by_kind(objects, "Database")
    (cluster,) = by_kind(objects, "Cluster")
    assert database["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert (database["spec"]["name"], database["spec"]["owner"]) == ("stafet_audit", "stafet_audit")
    roles = {r["name"]: r for r in cluster["spec"]["managed"]["roles"]}
    assert roles["stafet_audit"]["passwordSecret"] == {"name": "stafet-db-audit"}
    assert "stafet_operator" in roles

    verify = pod_of(cronjobs["stafet-ledger-verify"])
    (export,) = verify["initContainers"]
    (check,) = verify["containers"]
    kept = parsed(export["args"])["out"]
    assert export["args"][:3] == ["ledger", "checkpoints", "export"]
    assert check["args"][:2] == ["ledger", "verify"]
    assert parsed(check["args"])["against"] == kept, "verified against what was exported"
    writable = {m["name"]: m for m in export["volumeMounts"]}["anchor"]
    readable = {m["name"]: m for m in check["volumeMounts"]}["anchor"]
    assert str(kept).startswith(writable["mountPath"] + "/")
    assert writable["readOnly"] is False
    assert readable["readOnly"] is True, "verify only reads the export"
    (claim,) = by_kind(objects, "PersistentVolumeClaim")
    assert {v["name"]: v for v in verify["volumes"]}["anchor"]["persistentVolumeClaim"]["claimName"] == \
        claim["metadata"]["name"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", "the anchor outlives the release"
    assert claim["spec"]["storageClassName"] == "worm-retained"

    (rules,) = by_kind(objects, "PrometheusRule")
    alerts = [r for g in rules["spec"]["groups"] for r in g["rules"]]
    for name in CRONJOBS:
        (failed,) = [a for a in alerts if a["alert"] == "StafetScheduledCheckFailed" and f'"{name}"' in a["expr"]]
        assert "kube_job_failed" in failed["expr"]
        assert 'owner_kind="CronJob"' in failed["expr"]
        assert failed["labels"]["severity"] == "critical"
        (stale,) = [a for a in alerts if a["alert"] == "StafetScheduledCheckStale" and f'"{name}"' in a["expr"]]
        hours = production_value(CRONJOBS[name], "staleAfterHours")
        assert stale["expr"].endswith(f"> {hours * 3600}"), stale["expr"]


def production_value(check: str, key: str) -> Any:
    """A check's value in the production values, else the chart's default."""
    return PRODUCTION.get(check, {}).get(key, DEFAULTS[check][key])


def test_disabled_checks_render_nothing(tmp_path: Path) -> None:
    defaults = render("-f", str(keys_only(tmp_path)))
    assert not [o for o in defaults if o["kind"] in ("CronJob", "PersistentVolumeClaim", "Database")]
    off = render("-f", str(PRODUCTION_VALUES), "--set", "audit.enabled=false", "--set", "ledgerVerify.enabled=false")
    assert not [o for o in off if o["kind"] in ("CronJob", "PersistentVolumeClaim", "Database")]
    (rules,) = by_kind(off, "PrometheusRule")
    assert not [r for g in rules["spec"]["groups"] for r in g["rules"] if "ScheduledCheck" in r["alert"]]
    (cluster,) = by_kind(off, "Cluster")
    assert "stafet_audit" not in {r["name"] for r in cluster["spec"]["managed"]["roles"]}


def test_with_a_database_of_your_own_and_no_export_volume_the_checks_still_run_read_only(tmp_path: Path) -> None:
    objects = render("-f", str(keys_only(tmp_path)), "--set", "database.host=db.example.org",
                     "--set", "networkPolicy.egressCIDRs[0]=10.1.0.0/16", "--set", "audit.enabled=true",
                     "--set", "ledgerVerify.enabled=true", "--set", "ledgerVerify.export.enabled=false")
    validate(objects)
    assert not [o for o in objects if o["kind"] in ("PersistentVolumeClaim", "Database")]
    cronjobs = {c["metadata"]["name"]: pod_of(c) for c in by_kind(objects, "CronJob")}
    (audit,) = cronjobs["stafet-audit"]["containers"]
    assert parsed(audit["args"])["scratch_url"] == "postgresql://stafet_audit@db.example.org:5432/stafet_audit"
    verify = cronjobs["stafet-ledger-verify"]
    assert "initContainers" not in verify
    assert verify["containers"][0]["args"] == ["ledger", "verify"]
    own = render("-f", str(keys_only(tmp_path)), "--set", "ledgerVerify.enabled=true",
                 "--set", "ledgerVerify.export.existingClaim=auditor-worm")
    assert not by_kind(own, "PersistentVolumeClaim")
    (cronjob,) = by_kind(own, "CronJob")
    assert {v["name"]: v for v in pod_of(cronjob)["volumes"]}["anchor"]["persistentVolumeClaim"] == \
        {"claimName": "auditor-worm"}


@pytest.mark.parametrize(("setting", "refusal"), [
    *[(f"{check}.databaseUser={role}", f"{check}.databaseUser: {role} may write")
      for check in ("audit", "ledgerVerify") for role in sorted(writing_roles())],
    ("audit.kafkaUser=stafet-ledger", "audit.kafkaUser: stafet-ledger may write topics"),
    ("ledgerVerify.kafkaUser=stafet-operators", "ledgerVerify.kafkaUser: stafet-operators may write topics"),
    ("ledgerVerify.kafkaUser=someone", "ledgerVerify.kafkaUser: someone is not one of strimzi.users.auditors"),
    ("audit.scratch.databaseUser=stafet_verifier", "audit.scratch.databaseUser: stafet_verifier is another role's"),
    ("audit.scratch.databaseUser=stafet_operator", "audit.scratch.databaseUser: stafet_operator is another role's"),
    ("audit.scratch.database=stafet", "audit.scratch.database: the audit empties"),
])
def test_a_check_that_could_write_is_refused_at_render(setting: str, refusal: str) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION,
                  "-f", str(PRODUCTION_VALUES), "--set", setting)
    assert result.returncode != 0, f"{setting} rendered"
    assert refusal in result.stderr, result.stderr


def test_the_tenants_file_reaches_every_service_and_scheduled_check_and_only_when_given() -> None:
    """tenancy.tenantsFile (docs/tenancy.md): tenants.yaml in the ConfigMap every pod mounts
    at /etc/stafet, TENANTS_FILE on every service and on both checks (ledger verify and the
    audit decide as the services do); without it, no tenants anywhere (one payer)."""
    tenants = REPO_ROOT / "examples" / "tenants.yaml"
    for given in (True, False):
        objects = render("-f", str(PRODUCTION_VALUES), *(("--set-file", f"tenancy.tenantsFile={tenants}") if given
                                                          else ()))
        validate(objects)
        (config,) = [c for c in by_kind(objects, "ConfigMap") if c["metadata"]["name"] == "stafet-config"]
        pods = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in by_kind(objects, "Deployment")}
        pods |= {c["metadata"]["name"]: pod_of(c) for c in by_kind(objects, "CronJob")}
        assert set(pods) == {"stafet-ingest", "stafet-verifier", "stafet-ledger", "stafet-frontdoor", *CRONJOBS}
        for name, pod in pods.items():
            # Every container that reads the institution registry reads the tenants too.
            readers = [c for c in containers_of(pod) if "INSTITUTIONS_FILE" in env_of(c)]
            assert readers, name
            for container in readers:
                assert env_of(container).get("TENANTS_FILE") == ("/etc/stafet/tenants.yaml" if given else None), name
                assert "/etc/stafet" in {m["mountPath"] for m in container["volumeMounts"]}, name
        if given:
            assert config["data"]["tenants.yaml"].strip() == tenants.read_text().strip()
        else:
            assert "tenants.yaml" not in config["data"]
