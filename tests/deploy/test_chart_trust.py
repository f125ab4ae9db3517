"""Keys that end, as the chart installs them (docs/security.md): the signed key list, the
signed revocation list and the root keys that sign them reach every service, the ledger's
re-anchoring decision the ledger alone; a production release without a signed key list is
refused at render unless its values opt out in so many words. The rendered files are read
back through the loaders the services and the CLI use, so a chart that changed a byte of a
signed file, a file name or a path fails here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.ledger import _decision
from cli.main import app
from shared.domain.key_lists import KeyProblem
from shared.domain.principals import Principal, Role, SignatureProblem, Unauthenticated
from shared.domain.signing import RecordSigner, key_id_of, parse_public_key, private_hex, public_bytes
from shared.platform.settings import Settings
from shared.platform.trust import trusted_keys
from tests.deploy.tools import CHART, KUBERNETES_VERSION, PRODUCTION_VALUES, helm, render

CONFIG_DIR = "/etc/stafet"
SERVICES = ("ingest", "verifier", "ledger", "frontdoor")
SETTLEMENTS = "stafet.settlements.v1"
runner = CliRunner()


def _hex(key: Ed25519PrivateKey) -> str:
    return public_bytes(key.public_key()).hex()


def _containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Component -> its container, for every Deployment and Job."""
    return {o["metadata"]["labels"]["app.kubernetes.io/component"]: o["spec"]["template"]["spec"]["containers"][0]
            for o in objects if o["kind"] in ("Deployment", "Job")}


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v.get("value", "") for v in container["env"]}


def _config(objects: list[dict[str, Any]]) -> dict[str, str]:
    (config,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "stafet-config"]
    return dict(config["data"])


def _settings_of(objects: list[dict[str, Any]], component: str, folder: Path) -> Settings:
    """The Settings the component's pod would read: its rendered environment, with the
    ConfigMap's files written where the paths under /etc/stafet point."""
    folder.mkdir()
    for name, text in _config(objects).items():
        (folder / name).write_text(text, encoding="utf-8")
    env = _env(_containers(objects)[component])
    files = {k.lower(): folder / v.removeprefix(CONFIG_DIR + "/") for k, v in env.items()
             if k in ("TRUSTED_KEYS_FILE", "REVOKED_KEYS_FILE", "LEDGER_REANCHOR_DECISION_FILE")}
    for path in files.values():
        assert path.is_file(), f"{component}: {path.name} is not in the ConfigMap"
    return Settings(stafet_env=env["STAFET_ENV"], trust_root_keys=env.get("TRUST_ROOT_KEYS", ""),
                    ledger_origins_required_from=env.get("LEDGER_ORIGINS_REQUIRED_FROM") or None, **files)


def _record(signer: RecordSigner, at: dt.datetime) -> ConsumerRecord[Any, Any]:
    value = b'{"settlement_id": "s-1"}'
    return ConsumerRecord(topic=SETTLEMENTS, partition=0, offset=0, timestamp=int(at.timestamp() * 1000),
                          timestamp_type=1, key=b"k", value=value, checksum=None, serialized_key_size=1,
                          serialized_value_size=len(value), headers=tuple(signer.headers(SETTLEMENTS, b"k", value)))


class Installation:
    """What an operator makes before installing: a root key, service keys, a finance key and
    a stolen one, then with the CLI the signed key list, a revocation of the stolen key and
    a re-anchoring decision."""

    def __init__(self, folder: Path) -> None:
        self.root = Ed25519PrivateKey.generate()
        self.services = {name: Ed25519PrivateKey.generate() for name in SERVICES}
        self.finance, self.stolen = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        root_file = folder / "operator-root.key"
        root_file.write_text(private_hex(self.root))
        source = folder / "keys.yaml"
        source.write_text(yaml.safe_dump({"keys": [
            *({"principal": f"service:{name}", "public_key": _hex(key)} for name, key in self.services.items()),
            {"principal": "finance:kommune", "public_key": _hex(self.finance)},
            {"principal": "finance:kommune", "public_key": _hex(self.stolen)}]}))
        self.key_list, self.revocations, self.decision = (folder / f for f in (
            "keys.signed.yaml", "revoked.yaml", "reanchor.yaml"))
        env = {"STAFET_ENV": "production", "TRUST_ROOT_KEYS": _hex(self.root)}
        for command in (
                ["keys", "sign-list", str(source), "--out", str(self.key_list)],
                ["keys", "revoke", key_id_of(self.stolen.public_key()), "--reason", "stolen",
                 "--list", str(self.revocations)],
                ["ledger", "checkpoints", "reanchor", "--from-sequence", "41", "--start-offset", "12",
                 "--reason", "checked against the auditor's export", "--operator", "operator:alice",
                 "--out", str(self.decision)]):
            result = runner.invoke(app, [*command, "--signing-key", str(root_file)], env=env)
            assert result.exit_code == 0, result.output

    def values(self, *, root: bool = True, key_list: bool = True) -> list[str]:
        """helm arguments: the keys as values, the signed files with --set-file, as the
        chart's README tells an operator (without trust.rootKeys, trust.signedKeyList when
        told; --set-file comes after every --set in Helm, so it cannot be undone by one)."""
        roots = ["--set", f"trust.rootKeys[0]={_hex(self.root)}"] if root else []
        listed = ["--set-file", f"trust.signedKeyList={self.key_list}"] if key_list else []
        return [*roots, *listed, "--set", f"sealingPublicKey={'a' * 64}",
                "--set-file", f"trust.revocationList={self.revocations}",
                "--set-file", f"services.ledger.reanchorDecision={self.decision}"]


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return Installation(tmp_path_factory.mktemp("installation"))


def test_the_root_keys_and_the_revocation_list_reach_every_service_and_the_decision_the_ledger_alone(
        installation: Installation) -> None:
    objects = render(*installation.values())
    containers = _containers(objects)
    assert set(containers) == {*SERVICES, "migrate"}
    config = _config(objects)
    for name in SERVICES:
        env = _env(containers[name])
        assert env["TRUST_ROOT_KEYS"] == _hex(installation.root), name
        assert env["TRUSTED_KEYS_FILE"] == f"{CONFIG_DIR}/trusted-keys.yaml", name
        assert env["REVOKED_KEYS_FILE"] == f"{CONFIG_DIR}/revoked-keys.yaml", name
        assert {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True} in containers[name]["volumeMounts"]
        assert ("LEDGER_REANCHOR_DECISION_FILE" in env) == (name == "ledger"), name
    assert _env(containers["ledger"])["LEDGER_REANCHOR_DECISION_FILE"] == f"{CONFIG_DIR}/ledger-reanchor-decision.yaml"
    # The migration verifies no record: it gets none of it.
    assert not {"TRUST_ROOT_KEYS", "REVOKED_KEYS_FILE", "TRUSTED_KEYS_FILE"} & set(_env(containers["migrate"]))
    assert {"trusted-keys.yaml", "revoked-keys.yaml", "ledger-reanchor-decision.yaml"} <= set(config)
    # Without a ledger, no decision is rendered at all.
    without_ledger = render(*installation.values(), "--set", "services.ledger.enabled=false")
    assert "ledger-reanchor-decision.yaml" not in _config(without_ledger)


def test_the_rendered_lists_load_as_the_services_load_them_and_the_revoked_key_is_refused(
        installation: Installation, tmp_path: Path) -> None:
    objects = render(*installation.values())
    now = dt.datetime.now(dt.UTC)
    for component in ("verifier", "ledger"):
        trust = trusted_keys(_settings_of(objects, component, tmp_path / component))
        finance = RecordSigner("finance:kommune", installation.finance)
        assert trust.authenticate_record(_record(finance, now)) == Principal(Role.FINANCE, "kommune"), component
        refused = trust.authenticate_record(_record(RecordSigner("finance:kommune", installation.stolen), now))
        assert isinstance(refused, Unauthenticated), component
        assert refused.problem == SignatureProblem.REVOKED_KEY, component
        ledger_key = RecordSigner("service:ledger", installation.services["ledger"])
        assert trust.authenticate_record(_record(ledger_key, now)) == Principal(Role.SERVICE, "ledger")
    decision = _decision(_settings_of(objects, "ledger", tmp_path / "ledger-decision"))
    assert decision is not None
    assert (decision.from_sequence, decision.start_offset, decision.decided_by) == (41, 12, "operator:alice")


def test_the_ci_values_signed_lists_load_with_their_rotation_and_revocation(tmp_path: Path) -> None:
    """deploy/helm/stafet/ci/production-values.yaml holds real signed files (their root's
    private half thrown away): they load, with the retired ledger key's window and the
    revoked finance key."""
    objects = render("-f", str(PRODUCTION_VALUES))
    trust = trusted_keys(_settings_of(objects, "ledger", tmp_path / "config"))
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    listed = yaml.safe_load(production["trust"]["signedKeyList"])["keys"]
    (revoked,) = yaml.safe_load(production["trust"]["revocationList"])["revoked"]
    assert set(trust.principals().values()) >= {Principal(Role.SERVICE, name) for name in SERVICES}
    retired = [k for k in listed if k["principal"] == "service:ledger" and k["not_after"]]
    assert retired, "the ci values show a rotation"
    window = trust.window(key_id_of(parse_public_key(retired[0]["public_key"])))
    assert window is not None
    end = dt.datetime.fromisoformat(retired[0]["not_after"])
    assert window.problem_at(end - dt.timedelta(days=1)) is None
    assert window.problem_at(end + dt.timedelta(days=1)) == KeyProblem.EXPIRED_KEY
    revoked_window = trust.window(revoked["key_id"])
    assert revoked_window is not None
    assert revoked_window.problem_at(dt.datetime.fromisoformat(revoked["since"])) == KeyProblem.REVOKED_KEY


@pytest.mark.parametrize(("root", "key_list", "settings", "complaint"), [
    (False, True, [], "trust.rootKeys and trust.signedKeyList: production needs"),
    (True, False, [], "trust.rootKeys and trust.signedKeyList: production needs"),
    (True, True, ["--set", "trustedKeys.service.ingest[0]=" + "b" * 64], "trustedKeys and trust.signedKeyList: give one"),
    (True, False, ["--set", "trust.signedKeyList=kind: stafet_key_list"], "trust.signedKeyList: not a signed key list"),
    # The key list given as the decision (a later --set-file of the same key wins).
    (True, True, ["--set-file", "services.ledger.reanchorDecision={key_list}"],
     "services.ledger.reanchorDecision: not a signed re-anchoring decision"),
    (False, False, ["--set", "trust.allowUnsignedTrustedKeys=true", "--set", f"trustedKeys.service.ingest[0]={'b' * 64}",
      "--set", f"trustedKeys.service.verifier[0]={'b' * 64}", "--set", f"trustedKeys.service.ledger[0]={'b' * 64}",
      "--set", f"trustedKeys.service.frontdoor[0]={'b' * 64}"],
     "signed by an operator's root key, which production trusts only in trust.rootKeys"),
])
def test_a_production_release_without_a_signed_key_list_or_its_root_fails_to_render(
        installation: Installation, root: bool, key_list: bool, settings: list[str], complaint: str) -> None:
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION,
                  *installation.values(root=root, key_list=key_list),
                  *(s.format(key_list=installation.key_list) for s in settings))
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_a_signed_key_list_without_an_enabled_service_fails_in_production(tmp_path: Path) -> None:
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    key_list = yaml.safe_load(production["trust"]["signedKeyList"])
    key_list["keys"] = [k for k in key_list["keys"] if k["principal"] != "service:frontdoor"]
    source = tmp_path / "keys.yaml"
    source.write_text(yaml.safe_dump(key_list))
    result = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION,
                  "-f", str(PRODUCTION_VALUES), "--set-file", f"trust.signedKeyList={source}")
    assert result.returncode != 0
    assert "the list has none for service:frontdoor" in result.stderr, result.stderr
    render("-f", str(PRODUCTION_VALUES), "--set-file", f"trust.signedKeyList={source}",
           "--set", "services.frontdoor.enabled=false", "--set", "ingress.enabled=false")


def test_the_plain_trusted_keys_render_only_with_the_opt_out_in_production_or_in_development(tmp_path: Path) -> None:
    plain = ["--set", f"sealingPublicKey={'a' * 64}"] + [
        a for name in SERVICES for a in ("--set", f"trustedKeys.service.{name}[0]={'b' * 64}")]
    refused = helm("template", "stafet", str(CHART), "--kube-version", KUBERNETES_VERSION, *plain)
    assert refused.returncode != 0
    assert "trust.allowUnsignedTrustedKeys: true" in refused.stderr, refused.stderr
    for extra in (["--set", "trust.allowUnsignedTrustedKeys=true"], ["--set", "environment=development"]):
        objects = render(*plain, *extra)
        assert set(yaml.safe_load(_config(objects)["trusted-keys.yaml"])["service"]) == set(SERVICES)
        for name in SERVICES:
            assert "TRUST_ROOT_KEYS" not in _env(_containers(objects)[name]), name
            assert "REVOKED_KEYS_FILE" not in _env(_containers(objects)[name]), name


def test_the_ledgers_upgrade_boundary_reaches_the_ledger_and_its_verify_and_no_other_service(
        installation: Installation, tmp_path: Path) -> None:
    boundary = "2026-12-05T10:00:00Z"
    objects = render(*installation.values(), "--set", f"services.ledger.originalsRequiredFrom={boundary}",
                     "--set", "ledgerVerify.enabled=true")
    containers = _containers(objects)
    for name in SERVICES:
        assert (_env(containers[name]).get("LEDGER_ORIGINS_REQUIRED_FROM") == boundary) == (name == "ledger"), name
    # As the ledger loads it (shared/platform/trust.ledger_trust): the boundary in ms.
    from shared.platform.trust import ledger_trust
    trust = ledger_trust(_settings_of(objects, "ledger", tmp_path / "ledger"))
    assert trust.originals_required_from_ms == int(dt.datetime(2026, 12, 5, 10, tzinfo=dt.UTC).timestamp() * 1000)
    # The verify check believes what the ledger believes.
    checks = [doc for doc in objects if doc.get("kind") == "CronJob"]
    verify_env = [_env(c) for doc in checks for c in
                  [*doc["spec"]["jobTemplate"]["spec"]["template"]["spec"].get("initContainers", []),
                   *doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]]
                  if "verify" in " ".join(c.get("args", []))]
    assert verify_env
    assert all(env.get("LEDGER_ORIGINS_REQUIRED_FROM") == boundary for env in verify_env)
    # Not a date the services could read: refused at render.
    with pytest.raises(AssertionError):
        render(*installation.values(), "--set", "services.ledger.originalsRequiredFrom=yesterday")
    with pytest.raises(AssertionError):
        render(*installation.values(), "--set", f"services.verifier.originalsRequiredFrom={boundary}")
