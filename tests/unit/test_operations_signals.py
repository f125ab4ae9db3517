"""What operators read off a process: process metrics, the front door's HTTP metrics and
its one access line per request, uvicorn's lines once, and a migration that waits for a
database being created alongside it (deploy/helm/stafet, docs/operations.md)."""

from __future__ import annotations

import asyncio
import io
import json
import logging.config
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import uvicorn.config
from fastapi import FastAPI
from prometheus_client import generate_latest

from services.frontdoor.observability import UNMATCHED, RequestMetrics
from shared.platform import db, metrics, retry
from shared.platform.health import operations_answer
from shared.platform.logging import configure_logging


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_every_process_exports_its_memory_cpu_and_file_descriptors() -> None:
    text = generate_latest(metrics.REGISTRY).decode()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "python_gc_objects_collected_total"):
        assert f"\n{name}" in text, f"{name} is not on /metrics"
    assert sample("process_resident_memory_bytes") > 0


async def test_the_operations_port_answers_metrics_liveness_and_readiness_and_nothing_else() -> None:
    async def checks() -> dict[str, bool]:
        return {"started": True, "database": False}

    status, kind, body = await operations_answer("/metrics", checks)
    assert (status, kind.split(";")[0]) == ("200 OK", "text/plain")
    assert b"process_open_fds" in body
    status, _, body = await operations_answer("/readyz", checks)
    assert status.startswith("503")
    assert body == b"started ok\ndatabase FAIL\n"
    assert (await operations_answer("/livez", checks))[0] == "200 OK"
    assert (await operations_answer("/v1/events", checks))[0].startswith("404")


def small_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/things/{thing}")
    async def thing(thing: str) -> dict[str, str]:
        if thing == "bad":
            raise RuntimeError("boom")
        return {"thing": thing}

    app.add_middleware(RequestMetrics)
    return app


async def test_requests_are_counted_and_timed_by_route_template_and_status_and_logged_once_without_the_query(
        ) -> None:
    out = io.StringIO()  # not a TTY: JSON lines
    configure_logging("INFO", stream=out)
    route = "/v1/things/{thing}"
    before = sample("stafet_http_requests_total", route=route, method="GET", status="200")
    before_missing = sample("stafet_http_requests_total", route=UNMATCHED, method="GET", status="404")
    before_failed = sample("stafet_http_requests_total", route=route, method="GET", status="500")
    before_timed = sample("stafet_http_request_duration_seconds_count", route=route, method="GET")
    transport = httpx.ASGITransport(app=small_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://door") as client:
        assert (await client.get("/v1/things/a?cpr=150904-4321")).status_code == 200
        assert (await client.get("/v1/things/b")).status_code == 200
        assert (await client.get("/no/such/150904-4321")).status_code == 404
        assert (await client.get("/v1/things/bad")).status_code == 500
    assert sample("stafet_http_requests_total", route=route, method="GET", status="200") == before + 2
    assert sample("stafet_http_requests_total", route=UNMATCHED, method="GET", status="404") == before_missing + 1
    assert sample("stafet_http_requests_total", route=route, method="GET", status="500") == before_failed + 1
    assert sample("stafet_http_request_duration_seconds_count", route=route, method="GET") == before_timed + 3
    lines = [json.loads(line) for line in out.getvalue().splitlines() if '"http_request"' in line]
    assert [(line["route"], line["status"]) for line in lines] == [
        (route, 200), (route, 200), (UNMATCHED, 404), (route, 500)]
    assert "150904" not in out.getvalue(), "neither a query string nor a raw path is logged"
    assert all(line["duration_ms"] >= 0 for line in lines)


@pytest.fixture
def uvicorn_loggers() -> Iterator[None]:
    """uvicorn's loggers as they were: the tests below configure them as uvicorn does."""
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate, logging.getLogger(n).filters[:])
             for n in names}
    yield
    for name, (handlers, propagate, filters) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.propagate, logger.filters[:] = handlers, propagate, filters


@pytest.mark.usefixtures("uvicorn_loggers")
def test_uvicorns_lines_are_written_once_as_json_and_no_access_log_stays_off() -> None:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # what uvicorn does before loading the app
    access = logging.getLogger("uvicorn.access")
    access.handlers[:], access.propagate = [], False  # and what --no-access-log adds (`stafet serve`)
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("uvicorn.error").info("Started server process")
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/v1/events?cpr=1707024000", "1.1", 200)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["logger"], line["event"]) for line in lines] == [("uvicorn.error", "Started server process")], \
        "uvicorn's access log stays off: the front door writes its own line per request"


@pytest.mark.usefixtures("uvicorn_loggers")
def test_with_uvicorns_access_log_on_each_line_is_written_once_without_the_query() -> None:
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                                             "/v1/events?cpr=1707024000", "1.1", 200)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "/v1/events" in lines[0]
    assert "1707024000" not in lines[0]


async def test_the_migration_waits_for_a_role_that_is_not_there_yet_and_gives_up_on_anything_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "BACKOFF_FIRST_S", 0.01)
    monkeypatch.setattr(retry, "BACKOFF_MAX_S", 0.01)
    attempts: list[int] = []

    async def role_appears_on_the_third_try(url: str, dirs: object) -> list[str]:
        attempts.append(1)
        if len(attempts) < 3:
            raise asyncpg.UndefinedObjectError('role "stafet_ingest" does not exist')
        return ["ingest/001_ingest.sql"]

    monkeypatch.setattr(db, "migrate", role_appears_on_the_third_try)
    assert await db.migrate_when_ready("postgresql://owner@db-rw:5432/stafet", wait_s=5) == ["ingest/001_ingest.sql"]
    assert len(attempts) == 3

    async def missing_table(url: str, dirs: object) -> list[str]:
        raise asyncpg.UndefinedObjectError('type "nonsense" does not exist')

    monkeypatch.setattr(db, "migrate", missing_table)
    with pytest.raises(asyncpg.UndefinedObjectError):
        await db.migrate_when_ready("postgresql://owner@db-rw:5432/stafet", wait_s=5)

    async def unreachable(url: str, dirs: object) -> list[str]:
        raise ConnectionRefusedError("no server yet")

    monkeypatch.setattr(db, "migrate", unreachable)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ConnectionRefusedError):
        await db.migrate_when_ready("postgresql://owner@db-rw:5432/stafet", wait_s=0.2)
    assert asyncio.get_running_loop().time() - started < 2, "the wait is bounded by wait_s"
