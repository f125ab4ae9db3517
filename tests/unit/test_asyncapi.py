"""The checked-in AsyncAPI documents are what the FastStream apps generate today."""

from __future__ import annotations

import yaml

from cli.asyncapi import ASYNCAPI_DIR, drift
from shared.platform.processes import SERVICES


def test_asyncapi_documents_match_the_code() -> None:
    problems = drift()
    assert not problems, "docs/asyncapi/ is out of date; run `make docs`:\n" + "\n".join(problems)


def test_the_ingest_document_shows_the_institution_event_schema() -> None:
    text = (ASYNCAPI_DIR / "ingest.yaml").read_text()
    assert "stafet.institution-events.v1" in text
    assert "InstitutionEvent" in text
    assert "reported_by" in text
    assert {f"{s}.yaml" for s in SERVICES} <= {p.name for p in ASYNCAPI_DIR.iterdir()}


def test_the_openapi_document_shows_the_front_door_and_its_authentication() -> None:
    from cli.asyncapi import OPENAPI_DIR

    document = yaml.safe_load((OPENAPI_DIR / "frontdoor.yaml").read_text())
    post = document["paths"]["/v1/events"]["post"]
    assert set(post["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "401", "413", "415", "503"} <= set(post["responses"])
    assert document["components"]["securitySchemes"]["institutionToken"]["scheme"] == "bearer"
    assert "InstitutionEvent" in document["components"]["schemas"]


def test_every_message_documents_its_key_servers_and_an_example() -> None:
    for service in SERVICES:
        document = yaml.safe_load((ASYNCAPI_DIR / f"{service}.yaml").read_text())
        assert set(document["servers"]) == {"development", "production"}
        assert document["servers"]["production"]["security"]
        assert "scramSha512" in document["components"]["securitySchemes"]
        for name, message in document["components"]["messages"].items():
            assert message["bindings"]["kafka"]["key"]["description"], (service, name)
            assert message.get("examples"), (service, name)
            assert message["payload"].get("type") != "array", (service, name)  # one record per Kafka message
