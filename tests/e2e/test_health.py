"""Health and metrics of a service, as the kubelet and Prometheus see them: a ledger and
the front door started while Kafka and PostgreSQL are down are alive and say which check
fails (the front door answers POST with 503); once the servers are up they are ready and
work, and /metrics counts what they did; when the broker goes away again the ledger is not
ready until the broker returns.

On a stack of its own (free ports): the test stops and starts the servers.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from services.frontdoor.auth import development_token
from shared.platform.db import migrate
from shared.platform.processes import ServiceProcess
from shared.platform.stack import LocalStack, free_port
from shared.platform.topics import PAYMENTS, in_namespace
from tests.e2e.test_resilience import prepare_namespace, publish_payments, wait_for_entries
from tests.ledger_helpers import entry_count

pytestmark = pytest.mark.e2e
NAMESPACE = "resilience"  # the namespace publish_payments writes to
WAIT_S = 120.0


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


async def wait_for(port: int, path: str, status: int, contains: str, service: ServiceProcess) -> str:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        seen, body = await asyncio.to_thread(get, port, path)
        if seen == status and contains in body:
            return body
        assert service.running(), f"{service.name} exited: {service.log_path.read_text()[-2000:]}"
        assert asyncio.get_running_loop().time() < deadline, f"{path}: wanted {status} {contains!r}, got {seen} {body}"
        await asyncio.sleep(0.3)


async def test_a_ledger_and_the_front_door_say_not_ready_while_their_servers_are_down_and_ready_once_they_work(
        own_stack: LocalStack, tmp_path: Path) -> None:
    port, door_port, door_operations_port = free_port(), free_port(), free_port()
    env = {"KAFKA_BOOTSTRAP_SERVERS": own_stack.bootstrap_servers, "DATABASE_URL": own_stack.database_url,
           "STAFET_CREDENTIALS_DIR": str(own_stack.credentials_dir), "STAFET_TOPIC_NAMESPACE": NAMESPACE,
           "BATCH_MAX_RECORDS": "50", "BATCH_TIMEOUT_MS": "100",
           "HTTP_PORT": str(port), "METRICS_REFRESH_S": "0.5", "LEDGER_VERIFY_INTERVAL_S": "1"}
    ledger = ServiceProcess("ledger", env, tmp_path / "ledger.log")
    # The front door's /metrics is on its operations port, never on the public API's.
    door = ServiceProcess("frontdoor", {**env, "FRONT_DOOR_PORT": str(door_port),
                                        "HTTP_PORT": str(door_operations_port)}, tmp_path / "frontdoor.log")
    ledger.start()
    door.start()
    try:
        await wait_for(port, "/livez", 200, "ok", ledger)
        down = await wait_for(port, "/readyz", 503, "broker FAIL", ledger)
        assert "database FAIL" in down
        await wait_for(door_port, "/livez", 200, "ok", door)
        await wait_for(door_port, "/readyz", 503, "started FAIL", door)
        assert (await asyncio.to_thread(post_event, door_port))[0] == 503, "not started: send again later"
        await asyncio.to_thread(own_stack.start_kafka)
        await prepare_namespace(own_stack)
        half = await wait_for(port, "/readyz", 503, "broker ok", ledger)
        assert "database FAIL" in half
        await asyncio.to_thread(own_stack.start_postgres)
        owner_url = own_stack.role_url("owner")
        await migrate(owner_url)  # the migration job, after the ledger started
        ready = await wait_for(port, "/readyz", 200, "partitions_assigned ok", ledger)
        assert "FAIL" not in ready
        await wait_for(door_port, "/readyz", 200, "migrations ok", door)
        status, answer = await asyncio.to_thread(post_event, door_port)
        assert status == 200, answer
        assert '"accepted":1' in answer
        await wait_for(door_operations_port, "/metrics", 200,
                       'stafet_frontdoor_lines_total{reason="",status="accepted"} 1.0', door)
        await wait_for(door_operations_port, "/metrics", 200,
                       'stafet_http_requests_total{method="POST",route="/v1/events",status="200"} 1.0', door)
        await wait_for(door_operations_port, "/readyz", 200, "migrations ok", door)
        await wait_for(door_port, "/metrics", 404, "", door)
        # One access line per request, the front door's own (uvicorn's is off), as JSON.
        posts = [line for line in door.log_path.read_text().splitlines()
                 if '"http_request"' in line and '"POST"' in line]
        assert [json.loads(line)["status"] for line in posts] == [503, 200], posts
        assert '"uvicorn.access"' not in door.log_path.read_text()
        await publish_payments(own_stack, range(120))
        await wait_for_entries(owner_url, 120, ledger)
        assert await entry_count(owner_url) == 120
        journal = in_namespace(PAYMENTS, NAMESPACE).name
        await wait_for(port, "/metrics", 200, "stafet_ledger_chain_length_entries 120.0", ledger)
        metrics = await wait_for(port, "/metrics", 200, "stafet_ledger_verify_ok 1.0", ledger)
        assert f'stafet_records_consumed_total{{service="ledger",topic="{journal}"}} 120.0' in metrics
        # The lag is read from the group coordinator: it reaches 0 once the last batch's
        # offsets are committed (after its database commit), a refresh or two later.
        await wait_for(port, "/metrics", 200,
                       f'stafet_consumer_lag_records{{group="{NAMESPACE}-ledger",partition="0",topic="{journal}"}} 0.0',
                       ledger)
        await asyncio.to_thread(own_stack.stop_kafka, kill=True)
        await wait_for(port, "/readyz", 503, "broker FAIL", ledger)
        await wait_for(port, "/livez", 200, "ok", ledger)
        await asyncio.to_thread(own_stack.start_kafka)
        await wait_for(port, "/readyz", 200, "broker ok", ledger)
    finally:
        ledger.stop()
        door.stop()


def post_event(port: int) -> tuple[int, str]:
    """One event through the front door, with the development token of its institution."""
    event = {"event_id": "health-0001", "occurred_on": "2024-08-12", "reported_by": "alsskolen",
             "subject": {"cpr": "150904-4321"},
             "body": {"type": "enrolled", "institution": "alsskolen", "stage": "primary"}}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events", data=json.dumps(event).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {development_token('alsskolen')}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a local URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
