"""Attacks from anyone who can write to the broker, on the real servers, each refused.

Every forged record here is written with Kafka's own producer, as an attacker on the
network would write it: unsigned, signed with a key nobody trusts, or signed with a real
key of the wrong kind (an institution's, finance's). None of them changes any money, and
each is dead-lettered with a reason code (docs/security.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from typer.testing import CliRunner

from cli.main import app
from services.ledger.audit import rebuild_entry
from services.ledger.checkpoints import read_anchors
from shared.domain.contracts.loader import load_contract
from shared.domain.cpr_text import CPR_SPELLED
from shared.domain.events import JOURNAL_RECORD, ClockTick, PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.ledger.postings import chain_hash, entry_for, pending_account
from shared.domain.principals import Principal, Role
from shared.domain.signing import BATCH_PROOF_HEADER
from shared.platform.credentials import kafka_options
from shared.platform.processes import ServiceProcess, start_services, stop_services
from shared.platform.settings import REPO_ROOT, Settings
from shared.platform.topics import (
    CONTRACTS,
    DEAD_LETTERS,
    INSTITUTION_EVENTS,
    LEDGER_CHECKPOINTS,
    PAYMENTS,
    SETTLEMENTS,
    TRANSITIONS,
    all_topics,
    in_namespace,
)
from shared.platform.trust import trusted_keys
from tests.engine_replay import admitted, expected_balances, read_lines, sealed
from tests.kafka_helpers import next_watermark, produce, publish_watermark, read_all, read_records
from tests.ledger_helpers import ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SAMPLE = REPO_ROOT / "examples" / "events" / "sample.jsonl"
CONTRACT = load_contract(REPO_ROOT / "examples" / "contracts" / "next-stage-bonus.yaml")
TIMEOUT_S = 120.0
INVENTED = "k1:" + "e" * 64
STRANGER = "finance:mallory"  # a well-formed key that no receiver trusts
runner = CliRunner()
TRUST = trusted_keys(Settings())
VERIFIER = Principal(Role.SERVICE, "verifier")


async def dead_letters(servers: Servers, namespace: str, count: int) -> list[dict[str, object]]:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        found = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                          in_namespace(DEAD_LETTERS, namespace).name)]
        if len(found) >= count or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


async def balances_become(database_url: str, expected: dict[str, int]) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        state = await ledger_state(database_url)
        if state["balances"] == expected or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.5)


async def settled_entries(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE kind IN ('settled', 'failed')"))
    finally:
        await connection.close()


async def test_forged_transitions_contracts_instructions_and_settlements_change_no_money(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    genuine = admitted(read_lines(SAMPLE))
    expected = expected_balances([CONTRACT], genuine)
    assert expected, "the sample must produce payments, or this test proves nothing"
    transitions = in_namespace(TRANSITIONS, namespace).name
    services = start_services(service_env, tmp_path, ("verifier", "ledger"))
    try:
        # A forged contract version: ten times the price, signed by no operator.
        forged_contract = CONTRACT.model_copy(update={"version": CONTRACT.version + 1})
        raw_contract = forged_contract.model_dump_json().encode().replace(b'"amount_minor":', b'"amount_minor":10')
        key = f"{CONTRACT.contract_id}@{forged_contract.version}".encode()
        for signer in (None, "institution:alsskolen", STRANGER):
            await produce(servers.bootstrap_servers, in_namespace(CONTRACTS, namespace).name, [raw_contract],
                          keys=[key], signed_as=signer)
        # The genuine stream, signed by ingest as ingest does.
        await produce(servers.bootstrap_servers, transitions, [t.model_dump_json().encode() for t in genuine],
                      keys=[t.subject.encode() for t in genuine])
        # The same facts for a subject nobody reported, written straight onto the topic.
        invented = [t.model_copy(update={"subject": INVENTED, "event_id": f"forged-{n}"})
                    for n, t in enumerate(genuine) if t.subject == genuine[0].subject]
        for signer in (None, "institution:alsskolen"):
            await produce(servers.bootstrap_servers, transitions, [t.model_dump_json().encode() for t in invented],
                          keys=[INVENTED.encode()] * len(invented), signed_as=signer)
        # A forged watermark (no operator signed it) moves no time; the operator's does.
        forged_clock = ClockTick(today=dt.date(2200, 1, 1)).model_dump_json().encode()
        for signer in (None, "institution:alsskolen", "service:ingest"):
            await produce(servers.bootstrap_servers, transitions, [forged_clock], keys=[b"clock"], signed_as=signer)
        await publish_watermark(servers.bootstrap_servers, transitions, next_watermark(namespace))
        # DKK 64,000,000 owed to a made-up payee, straight onto the journal.
        forged_payment = PaymentInstruction(
            payment_id="f" * 32, kind=PaymentKind.PAYMENT, contract_id=CONTRACT.contract_id, contract_version=1,
            outcome_id="forged", subject=INVENTED, payer="sonderborg-kommune", payee="made-up-payee",
            amount_minor=64_000_000_00, currency="DKK", occurred_on=genuine[0].occurred_on)
        for signer in (None, "finance:dev", "institution:alsskolen"):
            await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                          [forged_payment.model_dump_json().encode()], keys=[b"made-up-payee"], signed_as=signer)
        state = await balances_become(database_url, expected)
        assert state["balances"] == expected
        journal = [JOURNAL_RECORD.validate_json(v) for _, v in
                   await read_all(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name)]
        # The same forged instruction under a genuine instruction's signature headers, its
        # batch proof included (the relay signs a round as trees of records, and the ledger
        # has verified that root): the forged record's own leaf leads to another root.
        payments = in_namespace(PAYMENTS, namespace).name
        genuine_records = [r for r in await read_records(servers.bootstrap_servers, payments)
                           if TRUST.authenticate(payments, r.key, r.value or b"", r.headers) == VERIFIER]
        borrowed = next((r for r in genuine_records if BATCH_PROOF_HEADER in dict(r.headers)), genuine_records[0])
        await produce(servers.bootstrap_servers, payments,
                      [forged_payment.model_copy(update={"payment_id": "e" * 32}).model_dump_json().encode()],
                      keys=[b"made-up-payee"], copied_headers=[list(borrowed.headers)])
        victim = next(r for r in journal if isinstance(r, PaymentInstruction) and r.payee != "made-up-payee")
        # Forged answers from "finance": paid, failed; and one written straight onto the journal.
        forged_paid = Settlement(settlement_id="forged-paid", payment_id=victim.payment_id,
                                 status=SettlementStatus.PAID, settled_on=victim.occurred_on, bank_reference="X")
        forged_failed = Settlement(settlement_id="forged-failed", payment_id=victim.payment_id,
                                   status=SettlementStatus.FAILED, settled_on=victim.occurred_on, reason="void")
        settlements = in_namespace(SETTLEMENTS, namespace).name
        await produce(servers.bootstrap_servers, settlements, [forged_paid.model_dump_json().encode()],
                      keys=[victim.payment_id.encode()], signed_as=None)
        await produce(servers.bootstrap_servers, settlements, [forged_failed.model_dump_json().encode()],
                      keys=[victim.payment_id.encode()], signed_as=STRANGER)
        await produce(servers.bootstrap_servers, settlements, [forged_paid.model_dump_json().encode()],
                      keys=[victim.payment_id.encode()], signed_as="institution:alsskolen")
        await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                      [forged_failed.model_dump_json().encode()], keys=[victim.payment_id.encode()],
                      signed_as="finance:dev")
        # The ledger's own key (a compromised forwarder) signs a settlement finance never
        # sent: without finance's signed original it is refused (services/ledger/origins.py).
        await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                      [forged_paid.model_dump_json().encode()], keys=[victim.payment_id.encode()],
                      signed_as="service:ledger")
        dead = await dead_letters(servers, namespace, 3 + 2 * len(invented) + 3 + 4 + 5)
        assert all(s.running() for s in services.values())
        final = await ledger_state(database_url)
        assert await settled_entries(database_url) == 0
    finally:
        stop_services(services)
    assert final["balances"] == expected
    assert not any("made-up-payee" in account for account in final["balances"])  # type: ignore[attr-defined]
    assert pending_account(victim.payee, victim.payee_role) in final["balances"]  # type: ignore[operator]
    assert all(r.contract_version == CONTRACT.version for r in journal if isinstance(r, PaymentInstruction)
               and r.payee != "made-up-payee")
    assert not [r for r in journal if isinstance(r, PaymentInstruction) and r.subject == INVENTED
                and r.payee != "made-up-payee"]
    reasons = Counter(str(d["reason"]) for d in dead)
    assert reasons == {"unauthenticated_contract": 3, "unauthenticated_transition": 2 * len(invented) + 3,
                       "unauthenticated_instruction": 4, "unauthenticated_settlement": 5}, reasons


# ---- ingest: who speaks, and no CPR number past it --------------------------------------

CPR_DIGITS = "1707024000"


def _event(event_id: str, reported_by: str = "alsskolen", **changes: object) -> dict[str, object]:
    event: dict[str, object] = {"event_id": event_id, "occurred_on": "2010-08-01", "reported_by": reported_by,
                                "subject": {"cpr": "150904-4321"},
                                "body": {"type": "enrolled", "institution": "alsskolen"}}
    event.update(changes)
    return event


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


CPR_CASES = {  # event id -> (event, field the dead letter names)
    "cpr-stage": (_event("cpr-stage", body={"type": "enrolled", "institution": "alsskolen",
                                            "stage": "170702-4000"}), "body.stage"),
    "cpr-programme": (_event("cpr-programme", "exam-authority", body={
        "type": "education_completed", "programme": "stx 1707024000", "level": "youth"}), "body.programme"),
    "cpr-grades": (_event("cpr-grades", "exam-authority", body={"type": "exam_result", "grades": {
        "17.07.02-4000": 7}}), "body.grades.[cpr removed]"),
    "cpr-reason": (_event("cpr-reason", body={"type": "retraction", "retracts_event_id": "x-1",
                                              "reason": "wrong child, 170702 4000"}), "body.reason"),
    "cpr-space": (_event("cpr-space", body={"type": "enrolled", "institution": "alsskolen",
                                            "stage": "170702 4000"}), "body.stage"),
}
ESCAPED_ID = "cpr-escaped"
DOTTED_ID = "ev-17.07.02-4000"


def spelled_cprs(text: str) -> set[str]:
    """The digits of every CPR-like run in `text`, JSON escapes decoded first."""
    decoded = re.sub(r"\\u00([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)
    return {"".join(m.groups()) for m in CPR_SPELLED.finditer(decoded)}


async def test_ingest_believes_only_what_the_signature_proves_and_lets_no_cpr_past_in_any_spelling(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    topic = in_namespace(INSTITUTION_EVENTS, namespace).name
    ingest = ServiceProcess("ingest", service_env, tmp_path / "ingest.log")
    ingest.start()
    try:
        control = sealed([json.dumps(_event("control")).encode()])
        await produce(servers.bootstrap_servers, topic, control)
        # Speaking as the exam authority with a school's key; unsigned; a pseudonym from a school.
        await produce(servers.bootstrap_servers, topic, sealed([json.dumps(_event(
            "mismatch", "exam-authority", body={"type": "exam_result", "grades": {"danish": 12}})).encode()]),
                      signed_as="institution:alsskolen")
        await produce(servers.bootstrap_servers, topic, sealed([json.dumps(_event("unsigned")).encode()]),
                      signed_as=None)
        await produce(servers.bootstrap_servers, topic, [json.dumps(_event(
            "pseudonym", subject={"pseudonym": INVENTED, "birth_date": "2004-09-15"})).encode()])
        cpr_events = sealed([json.dumps(event).encode() for event, _ in CPR_CASES.values()])
        cpr_events += sealed([json.dumps(_event(DOTTED_ID)).encode()])
        escaped = sealed([json.dumps(_event(ESCAPED_ID)).encode()])[0].replace(
            b'"institution":"alsskolen"}', b'"institution":"alsskolen","stage":"' + _escaped(CPR_DIGITS).encode() + b'"}')
        assert CPR_DIGITS.encode() not in escaped
        await produce(servers.bootstrap_servers, topic, [*cpr_events, escaped])
        dead = await dead_letters(servers, namespace, 3 + len(CPR_CASES) + 2)
        forwarded = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                              in_namespace(TRANSITIONS, namespace).name)]
        assert ingest.running()
    finally:
        ingest.stop()
    assert [t["event_id"] for t in forwarded] == ["control"]
    by_reason = {(d["reason"], d["field"]) for d in dead}
    assert {("signer_mismatch", "reported_by"), ("missing_signature", "reported_by"),
            ("pseudonym_not_allowed", "subject.pseudonym"), ("cpr_in_identifier", "event_id"),
            ("cpr_in_field", "body.stage")} <= by_reason
    assert {("cpr_in_field", field) for _, field in CPR_CASES.values()} <= by_reason
    assert len(dead) == 3 + len(CPR_CASES) + 2
    # No topic (the input topic aside, where the attacker put them), no table, no log holds one.
    leaks = []
    for spec in all_topics(namespace):
        if spec.name == topic:
            continue
        for key, value in await read_all(servers.bootstrap_servers, spec.name):
            if CPR_DIGITS in spelled_cprs(((key or b"") + value).decode("utf-8", "replace")):
                leaks.append(spec.name)
    connection = await asyncpg.connect(database_url)
    try:
        for table in [r["tablename"] for r in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]:
            for row in await connection.fetch(f'SELECT row_to_json(t)::text AS j FROM "{table}" t'):
                if CPR_DIGITS in spelled_cprs(row["j"]):
                    leaks.append(table)
    finally:
        await connection.close()
    log = (tmp_path / "ingest.log").read_text(encoding="utf-8", errors="replace")
    if CPR_DIGITS in spelled_cprs(log):
        leaks.append("ingest.log")
    assert "cpr-stage" in log  # the log was written, and names the refused events
    assert not leaks, leaks


# ---- the ledger against its own database superuser ----------------------------------------

async def _rewrite_and_rechain(database_url: str, sequence: int) -> None:
    """What a superuser can do: switch the guards off, change an entry's amount and its
    lines, and recompute every hash after it, so that the chain is consistent again."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute("ALTER TABLE ledger_entries DISABLE TRIGGER USER")
        await connection.execute("ALTER TABLE ledger_lines DISABLE TRIGGER USER")
        await connection.execute("UPDATE ledger_entries SET amount_minor = amount_minor * 100 WHERE sequence = $1",
                                 sequence)
        previous = await connection.fetchval("SELECT entry_hash FROM ledger_entries WHERE sequence = $1",
                                             sequence - 1)
        for row in await connection.fetch(
                "SELECT * FROM ledger_entries WHERE sequence >= $1 ORDER BY sequence", sequence):
            entry = rebuild_entry(row)
            content = entry.content_hash()
            current = chain_hash(previous, content)
            await connection.execute("UPDATE ledger_entries SET content_hash = $1, previous_hash = $2, "
                                     "entry_hash = $3 WHERE sequence = $4", content, previous, current,
                                     row["sequence"])
            await connection.execute("DELETE FROM ledger_lines WHERE sequence = $1", row["sequence"])
            for number, line in enumerate(entry.lines, start=1):
                await connection.execute(
                    "INSERT INTO ledger_lines (sequence, line, account, debit_minor, credit_minor, currency)"
                    " VALUES ($1, $2, $3, $4, $5, $6)", row["sequence"], number, line.account,
                    line.debit_minor, line.credit_minor, line.currency)
            previous = current
        await connection.execute("UPDATE ledger_chain_head SET entry_hash = $1", previous)
        await connection.execute("ALTER TABLE ledger_entries ENABLE TRIGGER USER")
        await connection.execute("ALTER TABLE ledger_lines ENABLE TRIGGER USER")
    finally:
        await connection.close()


async def _ledger_with_checkpoints(servers: Servers, namespace: str, service_env: dict[str, str],
                                   tmp_path: Path) -> int:
    """A ledger service that projected twelve instructions in several batches and
    checkpointed them all; returns the number of entries."""
    instructions = [PaymentInstruction(
        payment_id=f"{n:032x}", kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
        subject="k1:" + "1" * 64, payer="kommune", payee=f"school-{n % 3}", amount_minor=1000 + n,
        currency="DKK", occurred_on=dt.date(2024, 1, 1 + n % 28)) for n in range(1, 13)]
    checkpoints_topic = in_namespace(LEDGER_CHECKPOINTS, namespace).name
    ledger = ServiceProcess("ledger", {**service_env, "BATCH_MAX_RECORDS": "5"}, tmp_path / "ledger.log")
    ledger.start()
    try:
        for first in range(0, len(instructions), 4):  # several batches, several checkpoints
            await produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                          [i.model_dump_json().encode() for i in instructions[first:first + 4]])
        trust = trusted_keys(Settings())
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        while (await read_anchors(servers.bootstrap_servers, checkpoints_topic, trust)).through < len(instructions):
            assert asyncio.get_running_loop().time() < deadline, "the ledger wrote no checkpoints"
            await asyncio.sleep(0.5)
    finally:
        ledger.stop()
    return len(instructions)


def test_a_superuser_who_rewrites_an_entry_and_recomputes_the_chain_is_caught(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    entries = asyncio.run(_ledger_with_checkpoints(servers, namespace, service_env, tmp_path))
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    verify = ["ledger", "verify", "--checkpoints-topic", in_namespace(LEDGER_CHECKPOINTS, namespace).name]
    clean = runner.invoke(app, verify, env=env)
    assert clean.exit_code == 0, clean.output
    assert f"{entries} entries" in clean.stdout
    assert f"{entries} anchored by signed checkpoints" in clean.stdout

    asyncio.run(_rewrite_and_rechain(database_url, 5))

    # The chain alone is fooled (it was recomputed), but not the entry's signed source.
    alone = runner.invoke(app, ["ledger", "verify", "--no-checkpoints", "--journal-topic",
                                in_namespace(PAYMENTS, namespace).name], env=env)
    assert alone.exit_code == 1, alone.output
    assert "entry 5: unproven_entry: differs from what its signed source record posts" in alone.stderr
    caught = runner.invoke(app, verify, env=env)
    assert caught.exit_code == 1
    assert "entry 5" in caught.stderr
    assert "signed checkpoint" in caught.stderr


# ---- the broker administrator who removes the anchors ---------------------------------------

async def _delete_every_checkpoint(servers: Servers, topic: str) -> int:
    """What a broker administrator can do: delete every record of the checkpoints topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
    admin = AIOKafkaAdminClient(bootstrap_servers=servers.bootstrap_servers, **kafka_options("admin"))
    await consumer.start()
    await admin.start()
    try:
        partition = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([partition]))[partition]
        await admin.delete_records({partition: RecordsToDelete(before_offset=end)}, timeout_ms=10_000)
    finally:
        await admin.close()
        await consumer.stop()
    return end


def test_an_administrator_who_deletes_the_checkpoints_is_caught_before_and_after_a_ledger_restart(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    entries = asyncio.run(_ledger_with_checkpoints(servers, namespace, service_env, tmp_path))
    topic = in_namespace(LEDGER_CHECKPOINTS, namespace).name
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    kept = tmp_path / "auditor" / "checkpoints.jsonl"
    kept.parent.mkdir()
    exported = runner.invoke(app, ["ledger", "checkpoints", "export", "--out", str(kept),
                                   "--checkpoints-topic", topic], env=env)
    assert exported.exit_code == 0, exported.output
    assert kept.read_text().count("\n") >= 1  # every checkpoint record, kept

    asyncio.run(_rewrite_and_rechain(database_url, 5))  # the database superuser
    end = asyncio.run(_delete_every_checkpoint(servers, topic))  # the broker administrator
    verify = ["ledger", "verify", "--checkpoints-topic", topic]
    before = runner.invoke(app, verify, env=env)
    assert before.exit_code == 1, before.output
    assert f"the checkpoints topic starts at offset {end}, not 0" in before.stderr
    assert "which the ledger recorded publishing, is gone from the topic" in before.stderr

    # The ledger restarts and books another batch: it must not sign the rewritten history.
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger-after.log")
    ledger.start()
    try:
        more = PaymentInstruction(
            payment_id="9" * 32, kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
            subject="k1:" + "1" * 64, payer="kommune", payee="school-0", amount_minor=777, currency="DKK",
            occurred_on=dt.date(2024, 3, 1))
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                            [more.model_dump_json().encode()]))

        async def booked() -> int:
            connection = await asyncpg.connect(database_url)
            try:
                return int(await connection.fetchval("SELECT count(*) FROM ledger_entries"))
            finally:
                await connection.close()

        for _ in range(240):  # up to 120 s: booked, and the anchors checked
            if asyncio.run(booked()) == entries + 1 and "checkpointing_refused" in (
                    tmp_path / "ledger-after.log").read_text(encoding="utf-8", errors="replace"):
                break
            time.sleep(0.5)
        assert ledger.running()
    finally:
        ledger.stop()
    assert asyncio.run(booked()) == entries + 1
    log = (tmp_path / "ledger-after.log").read_text(encoding="utf-8", errors="replace")
    assert "checkpointing_refused" in log
    left = asyncio.run(read_records(servers.bootstrap_servers, topic))
    assert left == [], "the ledger signed checkpoints over history older than its last anchor"
    after = runner.invoke(app, verify, env=env)
    assert after.exit_code == 1, after.output
    assert "is gone from the topic" in after.stderr
    # The auditor's export still anchors the chain: the rewritten entry is named.
    against = runner.invoke(app, [*verify, "--against", str(kept)], env=env)
    assert against.exit_code == 1, against.output
    assert "kept in the export, is gone from the topic" in against.stderr
    assert "entry 5: entry_hash differs from the signed checkpoint" in against.stderr


# ---- the ledger's own database login forges a payment ------------------------------------------

async def _forge_a_payment_as_the_ledgers_role(servers: Servers, database_url: str) -> int:
    """What the ledger's runtime login can do: append a payment entry with its lines, a
    correctly recomputed chain hash and a moved head. Returns the forged entry's sequence."""
    from services.ledger.store import _append

    forged = PaymentInstruction(
        payment_id="d" * 32, kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
        subject="k1:" + "1" * 64, payer="sonderborg-kommune", payee="alsskolen", amount_minor=5_000_000,
        currency="DKK", occurred_on=dt.date(2024, 1, 20))
    connection = await asyncpg.connect(servers.role_url("ledger", database_url.rpartition("/")[2]))
    try:
        async with connection.transaction():
            head = await connection.fetchrow("SELECT sequence, entry_hash FROM ledger_chain_head FOR UPDATE")
            assert head is not None
            sequence, _ = await _append(connection, [entry_for(forged)], int(head["sequence"]),
                                        str(head["entry_hash"]))
    finally:
        await connection.close()
    return sequence


def test_a_payment_forged_with_the_ledgers_database_login_is_named_unsigned_and_unpaid(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    entries = asyncio.run(_ledger_with_checkpoints(servers, namespace, service_env, tmp_path))
    forged = asyncio.run(_forge_a_payment_as_the_ledgers_role(servers, database_url))
    assert forged == entries + 1
    topic = in_namespace(LEDGER_CHECKPOINTS, namespace).name
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    verify = ["ledger", "verify", "--checkpoints-topic", topic]
    caught = runner.invoke(app, verify, env=env)
    assert caught.exit_code == 1, caught.output
    assert f"entry {forged}: unproven_entry: no signed source record" in caught.stderr

    # The ledger restarts and books a genuine instruction after the forged row: it signs
    # no checkpoint over the forged entry, nor after it.
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger-after.log")
    ledger.start()
    try:
        genuine = PaymentInstruction(
            payment_id="9" * 32, kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
            subject="k1:" + "1" * 64, payer="sonderborg-kommune", payee="nordborg-skole", amount_minor=777,
            currency="DKK", occurred_on=dt.date(2024, 3, 1))
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                            [genuine.model_dump_json().encode()]))
        for _ in range(240):  # up to 120 s
            if "unproven_entry" in (tmp_path / "ledger-after.log").read_text(encoding="utf-8", errors="replace") \
                    and genuine.payment_id in str(asyncio.run(ledger_state(database_url))["entry_ids"]):
                break
            time.sleep(0.5)
        assert ledger.running()
    finally:
        ledger.stop()
    anchors = asyncio.run(read_anchors(servers.bootstrap_servers, topic, TRUST))
    assert anchors.through == entries, "the ledger signed a checkpoint over the forged entry"
    after = runner.invoke(app, verify, env=env)
    assert after.exit_code == 1, after.output
    assert f"entry {forged}: unproven_entry" in after.stderr
    # Finance pays the genuine payment and leaves the forged one out, every time.
    for name in ("first.csv", "again.csv"):
        payout = runner.invoke(app, ["finance", "payout", "--from", "2024-01-01", "--to", "2024-12-31",
                                     "--format", "csv", "--out", str(tmp_path / name),
                                     "--journal-topic", in_namespace(PAYMENTS, namespace).name], env=env)
        assert payout.exit_code == 0, payout.output
        assert f"left out: {'d' * 32}: unproven_entry" in payout.stderr
        assert "d" * 32 not in (tmp_path / name).read_text() if (tmp_path / name).exists() else True
    assert genuine.payment_id in (tmp_path / "first.csv").read_text()


# ---- a compromised verifier, key and all ---------------------------------------------------------

def test_stafet_audit_flags_an_instruction_a_compromised_verifier_signed_without_a_fact(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    genuine = admitted(read_lines(SAMPLE))
    expected = expected_balances([CONTRACT], genuine)
    assert expected, "the sample must produce payments, or this test proves nothing"
    # The contract version as an operator signs it onto the contracts topic: the audit
    # believes signed versions, not the verifier's configuration.
    env = {k: v for k, v in service_env.items() if k != "CONTRACT_FILES"}
    asyncio.run(produce(servers.bootstrap_servers, in_namespace(CONTRACTS, namespace).name,
                        [CONTRACT.model_dump_json().encode()], keys=[f"{CONTRACT.contract_id}@{CONTRACT.version}".encode()]))
    services = start_services(env, tmp_path, ("verifier", "ledger"))
    try:
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                            [t.model_dump_json().encode() for t in genuine], keys=[t.subject.encode() for t in genuine]))
        asyncio.run(publish_watermark(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                                      next_watermark(namespace)))
        assert asyncio.run(balances_become(database_url, expected))["balances"] == expected
        cli_env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
        audit = ["audit", "--transitions-topic", in_namespace(TRANSITIONS, namespace).name,
                 "--contracts-topic", in_namespace(CONTRACTS, namespace).name]
        clean = runner.invoke(app, audit, env=cli_env)
        assert clean.exit_code == 0, clean.output
        assert "audit ok" in clean.stdout
        # Its scratch database is its own: the verifier's login (which the migrations there
        # grant statements to) cannot connect and write what the replay reads back.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="CONNECT"):
            asyncio.run(asyncpg.connect(servers.role_url("verifier", database_url.rpartition("/")[2] + "_audit")))
        # The verifier's process signs a payment no fact earned (its key, its topic): the
        # ledger books it, its signature being genuine.
        forged = PaymentInstruction(
            payment_id="c" * 32, kind=PaymentKind.PAYMENT, contract_id=CONTRACT.contract_id, contract_version=1,
            outcome_id="invented", subject=genuine[0].subject, payer="sonderborg-kommune", payee="alsskolen",
            amount_minor=75_000_00, currency="DKK", occurred_on=genuine[0].occurred_on)
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(PAYMENTS, namespace).name,
                            [forged.model_dump_json().encode()], keys=[b"alsskolen"], signed_as="service:verifier"))
        for _ in range(240):  # up to 120 s
            if forged.payment_id in str(asyncio.run(ledger_state(database_url))["entry_ids"]):
                break
            time.sleep(0.5)
        caught = runner.invoke(app, audit, env=cli_env)
        assert all(s.running() for s in services.values())
    finally:
        stop_services(services)
    assert caught.exit_code == 1, caught.output
    assert f"in the ledger, not from the facts: {forged.payment_id}" in caught.stderr
    assert "no fact yields it" in caught.stderr
    assert caught.stderr.count("audit FAILED") == 1  # every genuine instruction is yielded by the facts


# ---- the verifier's own database login forges an instruction ------------------------------------

def test_an_instruction_inserted_into_the_verifiers_outbox_with_its_login_is_refused_by_the_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    genuine = admitted(read_lines(SAMPLE))
    expected = expected_balances([CONTRACT], genuine)
    assert expected, "the sample must produce payments, or this test proves nothing"
    payments = in_namespace(PAYMENTS, namespace).name
    services = start_services(service_env, tmp_path, ("verifier", "ledger"))
    try:
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                            [t.model_dump_json().encode() for t in genuine], keys=[t.subject.encode() for t in genuine]))
        asyncio.run(publish_watermark(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                                      next_watermark(namespace)))
        assert asyncio.run(balances_become(database_url, expected))["balances"] == expected
        # DKK 75,000.00 to a made-up payee, written into the outbox as the verifier's role:
        # once unsigned, once with a genuine published instruction's signature copied.
        signed = next(r for r in asyncio.run(read_records(servers.bootstrap_servers, payments))
                      if TRUST.authenticate(payments, r.key, r.value or b"", r.headers) == VERIFIER)
        copied = dict(signed.headers)

        async def forge() -> None:
            connection = await asyncpg.connect(servers.role_url("verifier", database_url.rpartition("/")[2]))
            try:
                for n, headers in enumerate(({}, copied)):
                    forged = PaymentInstruction(
                        payment_id=f"{n:x}" * 32, kind=PaymentKind.PAYMENT, contract_id=CONTRACT.contract_id,
                        contract_version=1, outcome_id="forged", subject=genuine[0].subject,
                        payer="sonderborg-kommune", payee="made-up-payee", amount_minor=75_000_00, currency="DKK",
                        occurred_on=genuine[0].occurred_on)
                    await connection.execute(
                        "INSERT INTO verifier_outbox (topic, key, payload, key_id, signature, batch_proof)"
                        " VALUES ($1, $2, $3, $4, $5, $6)", payments, "made-up-payee", forged.model_dump_json(),
                        *(None if headers.get(h) is None else headers[h].decode()
                          for h in ("stafet-key-id", "stafet-signature", "stafet-batch-proof")))
            finally:
                await connection.close()

        asyncio.run(forge())
        # The relay runs after the verifier's next batch: a fact delivered again (no news).
        asyncio.run(produce(servers.bootstrap_servers, in_namespace(TRANSITIONS, namespace).name,
                            [genuine[0].model_dump_json().encode()], keys=[genuine[0].subject.encode()]))
        dead = asyncio.run(dead_letters(servers, namespace, 2))
        final = asyncio.run(ledger_state(database_url))
        assert all(s.running() for s in services.values())
    finally:
        stop_services(services)
    assert Counter(str(d["reason"]) for d in dead) == {"unauthenticated_instruction": 2}
    assert final["balances"] == expected
    assert not any("made-up-payee" in account for account in final["balances"])  # type: ignore[attr-defined]
