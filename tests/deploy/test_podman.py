"""The chart's own manifests, played with podman on this machine's Kafka and PostgreSQL, in
the production configuration an operator installs.

The image is built with podman (deploy/image/build.sh). The test makes what an operator
makes before installing: each service's Ed25519 signing key and ingest's sealing and
pseudonym keys (`stafet keys new`), an institution signing key per institution (their
public halves in the registry), the front door's token hashes, and one Kafka principal and
one database role per service. These go into the chart as values (the public keys, in a
key list signed by an operator's root key with a revocation list, and the registry,
rendered into the ConfigMap) and as Secrets (`secrets.create`: passwords, private
keys and tokens as files), and the chart is rendered with `environment: production`,
under a release name of its own (so nothing of an earlier run, such as the volume podman
keeps for a ConfigMap, is reused). The migration Job runs to completion, the four
Deployments are played with `podman kube play`. Then: every pod's /readyz answers 200;
the sample events go through the front door's HTTP API with the institutions' tokens, one
event through `stafet publish` run as an institution's system runs it in production (its
own Kafka user, its key from `stafet keys new --signer institution:...`), and a synthetic
cohort straight to Kafka, signed with each institution's key (the code `stafet publish`
runs: the command signs a file with one institution's key, and the cohort speaks for
eighteen, each of whose events must stay in order); the verifier's pod
is stopped with SIGTERM while the stream is in flight and started again; the ledger ends
up holding exactly what the pure engine computes (nothing lost, nothing twice, the chain
intact), /metrics reports the ledger's entries and money, the records consumed, a dead
letter by its reason code (and no other dead letter anywhere: every signature checked out),
the front door's lines and HTTP requests (on its metrics port: the public port answers 404
for /metrics) and each process's memory, every query of the chart's Grafana dashboard reads
a metric these pods export, every log line is JSON, and the records carry trace context.
Last, the ledger-verify CronJob's pod runs once, as its schedule runs it: as the auditor and
the read-only operator role, the export into its volume, then `verify --against` it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import yaml

from cli.publish import publish_records, signed_by_each
from cli.synthetic.population import generate, to_json_line, write_registry
from services.frontdoor.auth import new_token, token_hash
from shared.domain.contracts.loader import load_contract
from shared.domain.institutions import InstitutionRegistry
from shared.domain.key_lists import KeyList, ListedKey, Revocation, RevocationList, sign_document
from shared.domain.sealing import load_public_key
from shared.domain.signing import RecordSigner, key_id_of, public_bytes
from shared.platform.settings import REPO_ROOT
from shared.platform.stack import free_port
from shared.platform.topics import INSTITUTION_EVENTS, PAYMENTS, TRANSITIONS, in_namespace
from tests.conftest import new_database
from tests.deploy.pods import (
    PLAYABLE,
    container_name,
    create_secrets,
    for_host_network,
    http_get,
    is_hook,
    job_as_pod,
    pod_name,
    podman,
    remove_leftovers,
    wait_ready,
    write_manifest,
)
from tests.deploy.tools import CHART, dashboard_metric_names, render
from tests.engine_replay import REGISTRY as EXAMPLE_REGISTRY
from tests.engine_replay import admitted, directory_of, expected_balances, read_lines
from tests.kafka_helpers import produce, settled
from tests.ledger_helpers import chain_report, ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e

IMAGE = "localhost/stafet:test"
SERVICES = ("ingest", "verifier", "ledger", "frontdoor")
CONTRACT_NAMES = ("next-stage-bonus.yaml", "mobility-bonus.yaml", "employment-pbr.yaml")
CONTRACTS = [load_contract(REPO_ROOT / "examples" / "contracts" / name) for name in CONTRACT_NAMES]
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"
COHORT_SUBJECTS = 400
INSTITUTIONS, EVENTS = generate(COHORT_SUBJECTS, seed=23, born_from=2000, born_to=2004)
REGISTRY = InstitutionRegistry(INSTITUTIONS + EXAMPLE_REGISTRY.all())
READY_TIMEOUT_S = 240.0
SETTLE_TIMEOUT_S = 300.0
STOP_GRACE_S = 60
STAFET = str(Path(sys.executable).parent / "stafet")
# One event that an institution's own system publishes with `stafet publish`, signed with
# the key `stafet keys new --signer institution:...` made for it: a new child's enrolment.
CLI_INSTITUTION = "bornehuset-solsikken"
CLI_EVENT = json.dumps({"event_id": "cli-1", "occurred_on": "2021-08-01", "reported_by": CLI_INSTITUTION,
                        "subject": {"cpr": "010119-4007"},
                        "body": {"type": "enrolled", "institution": CLI_INSTITUTION, "stage": "daycare"}}).encode()


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    result = subprocess.run([str(REPO_ROOT / "deploy" / "image" / "build.sh")], env={**os.environ, "IMAGE": IMAGE},
                            capture_output=True, text=True, check=False, timeout=1800)
    assert result.returncode == 0, f"image build failed: {result.stderr[-4000:]}"
    print(f"image built in {time.monotonic() - started:.0f}s")
    return IMAGE


@pytest.fixture
def empty_database(servers: Servers) -> str:
    """A database with no schema at all: the chart's migration Job makes it. Its URL as
    the owner role, for the test's own reads; the pods connect as their runtime roles."""
    return new_database(servers, migrated=False)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """Every private key an installation holds, made as an operator makes them."""
    folder = tmp_path / "keys"
    commands = [["keys", "new", "--out", str(folder)]]
    commands += [["keys", "new", "--out", str(folder), "--signer", f"service:{name}"] for name in SERVICES]
    commands.append(["keys", "new", "--out", str(folder), "--signer", f"institution:{CLI_INSTITUTION}"])
    # The operator whose clock (`stafet clock`) the verifier believes: its watermarks.
    commands.append(["keys", "new", "--out", str(folder), "--signer", "operator:clock"])
    for command in commands:
        subprocess.run([STAFET, *command], check=True, capture_output=True, cwd=REPO_ROOT, timeout=120)
    return folder


def institution_signers() -> dict[str, RecordSigner]:
    """Each institution's own key (its system signs what it sends)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return {i.id: RecordSigner(f"institution:{i.id}", Ed25519PrivateKey.generate()) for i in REGISTRY.all()}


def public_hex(path: Path) -> str:
    return path.read_text().strip()


def chart_values(servers: Servers, release: str, namespace: str, database_url: str, keys: Path,
                 registry: InstitutionRegistry, tokens: dict[str, str], ports: dict[str, int],
                 api_port: int) -> dict[str, Any]:
    """The values an operator would give, pointed at this machine's servers: each pod is
    its own Kafka principal and its own database role, every secret a file. `ports` are
    the services' metrics ports, `api_port` the front door's public one."""
    database = urlsplit(database_url)
    secrets: dict[str, dict[str, str]] = {}
    services: dict[str, Any] = {}
    for name in SERVICES:
        own_keys = {"signing.key": (keys / f"service-{name}.key").read_text()}
        if name == "ingest":
            own_keys |= {"pseudonym.key": (keys / "pseudonym.key").read_text(),
                         "sealing.key": (keys / "ingest-sealing.key").read_text()}
        if name == "frontdoor":
            own_keys["tokens.yaml"] = yaml.safe_dump({"tokens": {i: [token_hash(t)] for i, t in tokens.items()}})
        secrets |= {f"{release}-{name}-kafka": {"password": (servers.credentials_dir / "kafka" / name).read_text()},
                    f"{release}-{name}-db": {"password": (servers.credentials_dir / "postgres" / name).read_text()},
                    f"{release}-{name}-keys": own_keys}
        services[name] = {
            "enabled": True, "replicas": 1, "maxReplicas": 1, "metricsPort": ports[name], "dbPoolMaxSize": 4,
            "kafkaUser": name, "kafkaSecret": f"{release}-{name}-kafka",
            "databaseUser": f"stafet_{name}", "databaseSecret": f"{release}-{name}-db",
            "keysSecret": f"{release}-{name}-keys",
            "env": {"BATCH_TIMEOUT_MS": "100", "TICK_INTERVAL_S": "0.5", "METRICS_REFRESH_S": "1",
                    "LEDGER_VERIFY_INTERVAL_S": "5"}}
        if name == "frontdoor":
            services[name]["httpPort"] = api_port
        else:
            services[name]["batchMaxRecords"] = 50
    secrets[f"{release}-owner-db"] = {"password": (servers.credentials_dir / "postgres" / "owner").read_text()}
    # The scheduled ledger verification's read-only logins: the auditor, the operator's role.
    secrets[f"{release}-auditor-kafka"] = {"password": (servers.credentials_dir / "kafka" / "auditor").read_text()}
    secrets[f"{release}-operator-db"] = {"password": (servers.credentials_dir / "postgres" / "operator").read_text()}
    registry_file = keys.parent / "institutions.yaml"
    write_registry(registry_file, registry.all())
    return {
        "image": {"repository": IMAGE.rsplit(":", 1)[0], "tag": IMAGE.rsplit(":", 1)[1], "pullPolicy": "Never"},
        "environment": "production",
        "topicNamespace": namespace,
        "hostNetwork": True,
        "kafka": {"bootstrapServers": servers.bootstrap_servers, "securityProtocol": "SASL_PLAINTEXT"},
        "database": {"host": database.hostname, "port": database.port, "name": database.path.lstrip("/")},
        # Not played by podman, but rendered: a database outside the cluster needs its address.
        "networkPolicy": {"egressCIDRs": [f"{database.hostname}/32"]},
        "migration": {"databaseUser": "stafet_owner", "databaseSecret": f"{release}-owner-db"},
        "secrets": {"create": True, "data": secrets},
        "institutions": registry_file.read_text(),
        "contracts": {name: (REPO_ROOT / "examples" / "contracts" / name).read_text() for name in CONTRACT_NAMES},
        "trust": signed_trust(keys),
        "sealingPublicKey": public_hex(keys / "ingest-sealing.pub"),
        "services": services,
        "ledgerVerify": {"enabled": True, "kafkaUser": "auditor", "kafkaSecret": f"{release}-auditor-kafka",
                         "databaseUser": "stafet_operator", "databaseSecret": f"{release}-operator-db"},
    }


def signed_trust(keys: Path) -> dict[str, Any]:
    """The trusted keys as production takes them: a key list and a revocation list (of a
    key nobody uses) signed by an operator's root key, which the pods pin. Signed in
    process, as `stafet keys sign-list` and `stafet keys revoke` sign them."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    root, retired = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    listed = [ListedKey(principal=f"service:{name}", public_key=public_hex(keys / f"service-{name}.pub"))
              for name in SERVICES]
    listed.append(ListedKey(principal="operator:clock", public_key=public_hex(keys / "operator-clock.pub")))
    key_list = KeyList(issued_at=now, keys=tuple(listed))
    revocations = RevocationList(issued_at=now, revoked=(
        Revocation(key_id=key_id_of(retired.public_key()), reason="a key nobody uses"),))
    return {"rootKeys": [public_bytes(root.public_key()).hex()],
            "signedKeyList": yaml.safe_dump(sign_document(key_list, root), sort_keys=False),
            "revocationList": yaml.safe_dump(sign_document(revocations, root), sort_keys=False),
            "allowUnsignedTrustedKeys": False}


# Past every fact's decision date (the engine, tests/engine_replay.py, decides as of them).
WATERMARKS = (dt.date(2100, 1, 1), dt.date(2100, 1, 2))


def clock(servers: Servers, namespace: str, keys: Path, day: dt.date) -> None:
    """`stafet clock` as the operator runs it in production: its own Kafka user and key."""
    env = {**os.environ, "STAFET_ENV": "production", "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
           "STAFET_TOPIC_NAMESPACE": namespace, "KAFKA_USERNAME": "operator",
           "KAFKA_PASSWORD_FILE": str(servers.credentials_dir / "kafka" / "operator")}
    done = subprocess.run([STAFET, "clock", "--date", day.isoformat(), "--signing-key",
                           str(keys / "operator-clock.key")], env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "published on" in done.stdout, done.stdout


async def ingested(servers: Servers, namespace: str) -> None:
    """Until ingest has consumed every institution event (and so forwarded it)."""
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
    while not await settled(servers.bootstrap_servers, namespace, "", stages=("ingest",)):
        assert asyncio.get_running_loop().time() < deadline, "ingest did not catch up"
        await asyncio.sleep(0.5)


@pytest.fixture
def release(tmp_path: Path) -> Iterator[tuple[str, list[Path]]]:
    """A release name of this run's own, and the manifests played under it: every one is
    taken down at the end, pass or fail, with the podman secrets and volumes made for them."""
    name = f"stafet-{uuid.uuid4().hex[:8]}"
    manifests: list[Path] = []
    yield name, manifests
    for manifest in reversed(manifests):
        podman("kube", "down", str(manifest), check=False, timeout_s=120)
    remove_leftovers(tmp_path)


def test_the_charts_pods_run_the_pipeline_in_production_mode_and_a_sigterm_mid_stream_loses_nothing(
        servers: Servers, namespace: str, empty_database: str, keys: Path, image: str,
        release: tuple[str, list[Path]], tmp_path: Path) -> None:
    started = time.monotonic()
    release_name, played = release
    signers = institution_signers()
    public = {i: public_bytes(signer.key.public_key()).hex() for i, signer in signers.items()}
    public[CLI_INSTITUTION] = public_hex(keys / f"institution-{CLI_INSTITUTION}.pub")
    registry = InstitutionRegistry([i.model_copy(update={"keys": (public[i.id],)}) for i in REGISTRY.all()])
    sample = read_lines(SAMPLE)
    tokens = {reporter: new_token() for reporter in {json.loads(line)["reported_by"] for line in sample}}
    ports = {name: free_port() for name in SERVICES}  # each service's metrics port
    api_port = free_port()  # the front door's public API
    values = chart_values(servers, release_name, namespace, empty_database, keys, registry, tokens, ports, api_port)
    objects = render(values=values, tmp=tmp_path, release=release_name)

    # The Secrets and the migration Job (pre-install hooks) first: the Job runs to completion.
    (job,) = [o for o in objects if o["kind"] == "Job"]
    migrate = write_manifest(tmp_path / "migrate.yaml", [job_as_pod(job)])
    played.append(migrate)
    remove_leftovers(tmp_path, objects)  # nothing of an earlier run under these names
    create_secrets(tmp_path, [o for o in objects if o["kind"] == "Secret"])
    podman("kube", "play", "--network", "host", str(migrate))
    migrate_container = container_name(job["metadata"]["name"], "migrate")
    exit_code = podman("wait", migrate_container, timeout_s=300).stdout.strip()
    logs = podman("logs", migrate_container, check=False).stdout + podman("logs", migrate_container, check=False).stderr
    assert exit_code == "0", f"the migration Job failed: {logs}"
    assert "applied" in logs

    # Then the release's objects podman can run.
    release_manifest = write_manifest(tmp_path / "release.yaml",
                                      [for_host_network(o) if o["kind"] == "Deployment" else o
                                       for o in objects if o["kind"] in PLAYABLE and not is_hook(o)])
    played.append(release_manifest)
    podman("kube", "play", "--network", "host", str(release_manifest))
    deployments = {o["metadata"]["name"].rsplit("-", 1)[-1]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == set(SERVICES)
    for name, port in ports.items():
        env = {v["name"]: v.get("value") for v in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["STAFET_ENV"] == "production"
        assert env["TRUST_ROOT_KEYS"] == values["trust"]["rootKeys"][0], "the pods check the signed lists at start"
        assert env["REVOKED_KEYS_FILE"] == "/etc/stafet/revoked-keys.yaml"
        wait_ready(port, name, READY_TIMEOUT_S, alive=lambda n=name: assert_running(deployments[n], n))
    ready_after = time.monotonic() - started
    # As the securityContext says: the image's non-root user, a read-only root filesystem.
    for name, deployment in deployments.items():
        inspected = json.loads(podman("inspect", container_name(pod_name(deployment), name)).stdout)[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True, name
        assert inspected["Config"]["User"].split(":")[0] == "10001", name

    # A malformed record becomes a dead letter with its reason code, on /metrics too.
    events_topic = in_namespace(INSTITUTION_EVENTS, namespace).name
    asyncio.run(produce(servers.bootstrap_servers, events_topic, [b'{"event_id": "broken", ']))

    # The sample through the front door (each institution with its token, in the file's
    # order), one event with `stafet publish` as its institution's system runs it in
    # production, a cohort straight to Kafka signed by each institution's own key; then
    # stop the verifier with SIGTERM mid-stream.
    cohort = [to_json_line(e) for e in EVENTS]
    assert len(admitted([CLI_EVENT], REGISTRY)) == 1
    expected = expected_balances(CONTRACTS, admitted([*sample, CLI_EVENT, *cohort], REGISTRY),
                                 directory=directory_of(REGISTRY))
    assert expected, "the events must produce payments, or this test proves nothing"
    answers = post_through_front_door(api_port, sample, tokens)
    assert sum(a["accepted"] + a["duplicates"] + a["refused"] for a in answers) == len(sample), answers
    (tmp_path / "cli.jsonl").write_bytes(CLI_EVENT + b"\n")
    institution_env = {**os.environ, "STAFET_ENV": "production", "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
                       "STAFET_TOPIC_NAMESPACE": namespace, "KAFKA_USERNAME": "institution",
                       "KAFKA_PASSWORD_FILE": str(servers.credentials_dir / "kafka" / "institution"),
                       "SEALING_PUBLIC_KEY_FILE": str(keys / "ingest-sealing.pub")}
    published = subprocess.run([STAFET, "publish", str(tmp_path / "cli.jsonl"), "--signing-key",
                                str(keys / f"institution-{CLI_INSTITUTION}.key")], env=institution_env,
                               capture_output=True, text=True, check=False, timeout=300)
    assert published.returncode == 0, published.stderr
    asyncio.run(publish_records(servers.bootstrap_servers, events_topic, list(enumerate(cohort, start=1)),
                                recipient=load_public_key(keys / "ingest-sealing.pub"), signing=SignedByEach(signers)))
    verifier_pod = pod_name(deployments["verifier"])
    # The operator's clock, as a scheduler runs it: what is in by now is decided (facts
    # ingest forwards after it are decided by the next one, after the restart).
    clock(servers, namespace, keys, WATERMARKS[0])
    entries_at_stop = asyncio.run(wait_for_entries(empty_database, at_least=1))
    state = asyncio.run(ledger_state(empty_database))
    assert state["balances"] != expected, "the stream was over before the SIGTERM: not mid-stream"
    stop = podman("pod", "stop", "-t", str(STOP_GRACE_S), verifier_pod, timeout_s=STOP_GRACE_S + 60)
    assert stop.returncode == 0
    verifier_container = container_name(verifier_pod, "verifier")
    inspected = json.loads(podman("inspect", verifier_container).stdout)[0]["State"]
    verifier_logs = podman("logs", verifier_container, check=False).stderr
    assert inspected["ExitCode"] == 0, f"SIGTERM did not end the verifier cleanly: {inspected}\n{verifier_logs[-3000:]}"
    podman("pod", "start", verifier_pod)
    wait_ready(ports["verifier"], "verifier after restart", READY_TIMEOUT_S)
    asyncio.run(ingested(servers, namespace))
    clock(servers, namespace, keys, WATERMARKS[1])

    state = asyncio.run(wait_for_balances(empty_database, expected, alive=lambda: [
        assert_running(deployment, name) for name, deployment in deployments.items()]))
    assert state["balances"] == expected, "lost or duplicated money after the SIGTERM"
    assert state["unbalanced"] == 0
    assert len(set(state["entry_ids"])) == len(state["entry_ids"])
    report = asyncio.run(chain_report(empty_database))
    assert report.ok, report.problem

    # /metrics: the ledger's entries and money as the database has them, and what flowed.
    by_contract = asyncio.run(entries_by_contract_and_kind(empty_database))
    metrics = wait_for_metrics(ports["ledger"], by_contract)
    assert 'stafet_ledger_verify_ok 1.0' in metrics
    ingest_metrics = http_get(f"http://127.0.0.1:{ports['ingest']}/metrics")[1]
    consumed = sample_value(ingest_metrics, "stafet_records_consumed_total", service="ingest", topic=events_topic)
    assert consumed >= len(sample) + 1 + len(cohort) + 1
    assert sample_value(ingest_metrics, "stafet_dead_letters_total", service="ingest", reason="malformed_json") == 1
    # Nothing else was refused anywhere: every signature, key and credential was in place.
    dead = [line for port in ports.values() for line in http_get(f"http://127.0.0.1:{port}/metrics")[1].splitlines()
            if line.startswith("stafet_dead_letters_total{") and not line.endswith(" 0.0")]
    assert dead == ['stafet_dead_letters_total{reason="malformed_json",service="ingest"} 1.0'], dead
    assert "faststream_received_processed_messages_duration_seconds_bucket" in ingest_metrics
    assert "stafet_batch_records_bucket" in ingest_metrics
    door_metrics = http_get(f"http://127.0.0.1:{ports['frontdoor']}/metrics")[1]
    assert sample_value(door_metrics, "stafet_frontdoor_lines_total", status="accepted", reason="") == \
        sum(a["accepted"] for a in answers)
    assert sample_value(door_metrics, "stafet_http_requests_total", route="/v1/events", method="POST",
                        status="200") == len(answers)
    assert http_get(f"http://127.0.0.1:{api_port}/metrics")[0] == 404, "/metrics is off the public port"
    for name, port in ports.items():
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        assert sample_value(text, "process_resident_memory_bytes") > 0, name
    exported = set().union(*(exported_names(http_get(f"http://127.0.0.1:{port}/metrics")[1]) for port in ports.values()))
    print("metric names on /metrics:", " ".join(sorted(exported)))
    # Every query of the chart's Grafana dashboard reads a metric these pods export.
    board = json.loads((CHART / "dashboards" / "stafet.json").read_text())
    assert dashboard_metric_names(board) - exported == set(), "dashboard panels on metrics nobody exports"

    # Trace context travels in the records' headers from ingest to the ledger's journal.
    for topic in (TRANSITIONS, PAYMENTS):
        headers = asyncio.run(first_headers(servers.bootstrap_servers, in_namespace(topic, namespace).name))
        assert "traceparent" in headers, f"no trace context on {topic.name}: {headers}"
    ledger_logs = podman("logs", container_name(pod_name(deployments["ledger"]), "ledger"), check=False).stderr
    projected = [json.loads(line) for line in ledger_logs.splitlines() if '"batch_projected"' in line]
    assert projected
    assert all(len(line.get("trace_id", "")) == 32 for line in projected)
    # Every line every pod wrote is JSON, the standard library's (FastStream, aiokafka,
    # uvicorn) included, which carry their logger's name.
    loggers = set()
    for name, deployment in deployments.items():
        logs = podman("logs", container_name(pod_name(deployment), name), check=False)
        for line in (logs.stdout + logs.stderr).splitlines():
            try:
                loggers.add(json.loads(line).get("logger"))
            except ValueError:
                raise AssertionError(f"{name} wrote a line that is not JSON: {line[:300]}") from None
    assert {"faststream", "uvicorn.error"} <= loggers, loggers
    # The ledger-verify CronJob's pod, run once as its schedule runs it: the export appends
    # the signed checkpoints to its volume, then verify checks the chain against them.
    verify_started = time.monotonic()
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob"]
    (claim,) = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
    run = {"metadata": cronjob["metadata"], "spec": cronjob["spec"]["jobTemplate"]["spec"]}
    scheduled = write_manifest(tmp_path / "ledger-verify.yaml", [claim, job_as_pod(run)])
    played.append(scheduled)
    # podman keeps no ConfigMaps of its own: give it the release's again (its volume is there).
    podman("kube", "play", "--network", "host", "--configmap", str(release_manifest), str(scheduled))
    verify_container = container_name(cronjob["metadata"]["name"], "verify")
    exit_code = podman("wait", verify_container, timeout_s=300).stdout.strip()
    verify_logs = podman("logs", verify_container, check=False)
    said = verify_logs.stdout + verify_logs.stderr
    assert exit_code == "0", f"the scheduled ledger verification failed: {said[-3000:]}"
    assert f"ledger ok: {report.entries} entries" in said, said
    assert "compared with /var/lib/stafet/anchor/checkpoints.jsonl" in said, said
    # The export (an init container, gone once done) kept every checkpoint from offset 0 on.
    volume = json.loads(podman("volume", "inspect", claim["metadata"]["name"]).stdout)[0]["Mountpoint"]
    kept = [json.loads(line)["offset"] for line in (Path(volume) / "checkpoints.jsonl").read_text().splitlines()]
    assert kept, "the export kept no checkpoint"
    assert kept == list(range(len(kept)))
    verify_s = time.monotonic() - verify_started
    print(f"ready {ready_after:.0f}s after start; SIGTERM at {entries_at_stop} ledger entries; "
          f"scheduled verification {verify_s:.0f}s; whole test {time.monotonic() - started:.0f}s")


class SignedByEach:
    """Each event signed by the institution it names, as each institution's system does."""

    def __init__(self, signers: dict[str, RecordSigner]) -> None:
        self._signers = signers

    def batch_headers(self, topic: str, records: Sequence[tuple[str, bytes, bytes]]) -> list[list[tuple[str, bytes]]]:
        return signed_by_each(topic, records, self._signers.__getitem__)


def post_through_front_door(port: int, lines: list[bytes], tokens: dict[str, str]) -> list[dict[str, Any]]:
    """POST the lines as JSON Lines batches, one per run of the same institution (so they
    arrive in the file's order), each with that institution's token; the answers."""
    answers = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for reporter, run in itertools.groupby(lines, key=lambda line: json.loads(line)["reported_by"]):
            response = client.post("/v1/events", content=b"\n".join(run) + b"\n",
                                   headers={"Authorization": f"Bearer {tokens[reporter]}",
                                            "Content-Type": "application/x-ndjson"})
            assert response.status_code == 200, response.text
            answers.append(response.json())
    return answers


def assert_running(deployment: dict[str, Any], name: str) -> None:
    container = container_name(pod_name(deployment), name)
    state = json.loads(podman("inspect", container).stdout)[0]["State"]
    if not state.get("Running"):
        logs = podman("logs", container, check=False)
        raise AssertionError(f"{name} stopped: {state}\n{(logs.stdout + logs.stderr)[-4000:]}")


async def wait_for_entries(database_url: str, at_least: int) -> int:
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:
        connection = await asyncpg.connect(database_url)
        try:
            count = int(await connection.fetchval("SELECT count(*) FROM ledger_entries"))
        finally:
            await connection.close()
        if count >= at_least:
            return count
        assert asyncio.get_running_loop().time() < deadline, "no ledger entry appeared"
        await asyncio.sleep(0.05)


async def wait_for_balances(database_url: str, expected: dict[str, int], alive: Any) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while True:
        state = await ledger_state(database_url)
        if state["balances"] == expected or asyncio.get_running_loop().time() > deadline:
            return state
        alive()
        await asyncio.sleep(1.0)


async def entries_by_contract_and_kind(database_url: str) -> dict[tuple[str, str], tuple[int, int]]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT contract_id, kind, count(*) AS n, sum(amount_minor) AS amount"
                                      " FROM ledger_entries GROUP BY contract_id, kind")
    finally:
        await connection.close()
    return {(r["contract_id"], r["kind"]): (int(r["n"]), int(r["amount"])) for r in rows}


def sample_value(text: str, metric: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (labels in any order)."""
    for line in text.splitlines():
        if line.startswith(metric + " "):
            label_text, value = "", line.split()[1]
        elif line.startswith(metric + "{"):
            label_text, _, value = line[len(metric) + 1:].rpartition("} ")
        else:
            continue
        found = dict(part.split("=", 1) for part in label_text.split(",") if part)
        if all(found.get(k) == json.dumps(v) for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {metric} {labels} on /metrics")


def exported_names(text: str) -> set[str]:
    """Every metric name a /metrics text offers: its samples' names, and the families it
    declares (`# TYPE`) even before a labelled one has a sample (a histogram's as its
    _bucket, _sum and _count series)."""
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def wait_for_metrics(port: int, by_contract: dict[tuple[str, str], tuple[int, int]]) -> str:
    deadline = time.monotonic() + 60
    while True:
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        try:
            for (contract_id, kind), (count, amount) in by_contract.items():
                assert sample_value(text, "stafet_ledger_entries", contract_id=contract_id, kind=kind,
                                    currency="DKK") == count
                assert sample_value(text, "stafet_ledger_amount_minor", contract_id=contract_id, kind=kind,
                                    currency="DKK") == amount
            assert sample_value(text, "stafet_ledger_chain_length_entries") == sum(c for c, _ in by_contract.values())
            return text
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


async def first_headers(bootstrap: str, topic: str) -> dict[str, bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from shared.platform.credentials import kafka_options

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                **kafka_options("admin"))
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        batch = await consumer.getmany(timeout_ms=10_000, max_records=1)
        for records in batch.values():
            return {key: value for key, value in records[0].headers}
        raise AssertionError(f"nothing on {topic}")
    finally:
        await consumer.stop()
