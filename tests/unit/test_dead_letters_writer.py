"""Dead letters stay clean: one redacting writer for every service, and no other principal
may write the topic (docs/security.md, "Dead letters")."""

from __future__ import annotations

import ast
import asyncio
import json
from typing import Any

from shared.domain.dead_letters import DeadLetter
from shared.platform.dead_letters import write_dead_letter
from shared.platform.kafka_access import Kind, Operation, Resource, grants_for
from shared.platform.settings import REPO_ROOT

CPR = "170702-4000"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes | None]] = []

    async def publish(self, payload: bytes, *, key: bytes | None, no_confirm: bool) -> None:
        self.sent.append((payload, key))


def test_the_writer_redacts_a_letter_however_it_was_built() -> None:
    """`DeadLetter.of` redacts; a letter built with the constructor, as a careless or
    compromised code path would, is redacted by the writer all the same."""
    careless = DeadLetter(reason="schema_violation", field=f"body.{CPR}", message=f"bad child {CPR}",
                          original=json.dumps({"cpr": "1707024000", "note": "170702 4000"}), record_id=f"ev-{CPR}")
    recorder = Recorder()
    asyncio.run(write_dead_letter(recorder, careless, service="ledger", topic="ns.settlements.v1", partition=0,
                                  offset=7, key=b"k"))
    (payload, key), = recorder.sent
    written = json.loads(payload)
    assert key == b"k"
    assert written["service"] == "ledger"
    assert written["source"] == {"topic": "ns.settlements.v1", "partition": 0, "offset": 7}
    text = payload.decode()
    for spelling in ("170702-4000", "1707024000", "170702 4000"):
        assert spelling not in text, spelling
    assert written["reason"] == "schema_violation"
    assert "[cpr removed]" in written["original"]


def _dead_letter_publishers(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and any(
                isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "DEAD_LETTERS"
                for arg in ast.walk(node.value)):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_every_service_writes_dead_letters_only_through_the_writer() -> None:
    services = sorted((REPO_ROOT / "services").glob("*/*.py"))
    writers: dict[str, Any] = {}
    for path in services:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        publishers = _dead_letter_publishers(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "publish"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in publishers):
                raise AssertionError(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: publishes a dead letter "
                                     "without write_dead_letter")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to_json" \
                    and any(k.arg == "service" for k in node.keywords):
                raise AssertionError(f"{path.relative_to(REPO_ROOT)}:{node.lineno}: serialises a dead letter itself")
        if publishers:
            writers[path.parent.name] = "write_dead_letter" in path.read_text(encoding="utf-8")
    assert writers == {"ingest": True, "verifier": True, "ledger": True}


def test_only_the_three_services_may_write_the_dead_letters_topic() -> None:
    writers = {kind for kind in Kind for grant in grants_for(kind, "ns")
               if grant.resource == Resource.TOPIC and grant.operation == Operation.WRITE
               and "ns.dead-letters.".startswith(grant.prefix)}
    assert writers == {Kind.INGEST, Kind.VERIFIER, Kind.LEDGER}
