"""Keys that end, on the real servers: a revoked key settles nothing, and a ledger key
rotated out keeps the checkpoints it signed verifying (shared/domain/key_lists.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import asyncpg
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.main import app
from services.ledger.checkpoints import read_records
from shared.domain.events import PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.key_lists import KeyList, ListedKey, Revocation, RevocationList, sign_document
from shared.domain.signing import RecordSigner, private_hex, public_bytes
from shared.platform.processes import ServiceProcess
from shared.platform.topics import DEAD_LETTERS, LEDGER_CHECKPOINTS, PAYMENTS, SETTLEMENTS, in_namespace
from tests.kafka_helpers import produce, read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
TIMEOUT_S = 120.0
runner = CliRunner()
# In development operator:dev's well-known key is a trust root (shared/platform/trust.py).
ROOT = RecordSigner.development("operator:dev").key


def _instruction(n: int) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=f"{n:032x}", kind=PaymentKind.PAYMENT, contract_id="pbr", contract_version=1, outcome_id="job",
        subject="k1:" + "1" * 64, payer="kommune", payee=f"school-{n % 3}", amount_minor=1000 + n,
        currency="DKK", occurred_on=dt.date(2024, 1, 1 + n % 28))


async def _until(check: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while not await check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.5)


async def _count(database_url: str, where: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM ledger_entries WHERE {where}"))
    finally:
        await connection.close()


def _write(path: Path, content: object) -> Path:
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def test_a_revoked_keys_settlement_is_refused_and_a_trusted_ones_books(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    development_finance = RecordSigner.development("finance:dev")
    revoked = _write(tmp_path / "revoked.yaml", sign_document(RevocationList(
        issued_at=dt.datetime.now(dt.UTC), revoked=(Revocation(key_id=development_finance.key_id,
                                                                  reason="the well-known development key"),)), ROOT))
    kommune = RecordSigner("finance:kommune", Ed25519PrivateKey.generate())
    trusted = _write(tmp_path / "trusted.yaml", {"finance": {"kommune": [public_bytes(kommune.key.public_key()).hex()]}})
    payments, settlements = (in_namespace(t, namespace).name for t in (PAYMENTS, SETTLEMENTS))
    paid, other = _instruction(1), _instruction(2)
    ledger = ServiceProcess("ledger", {**service_env, "REVOKED_KEYS_FILE": str(revoked),
                                       "TRUSTED_KEYS_FILE": str(trusted)}, tmp_path / "ledger.log")
    ledger.start()
    try:
        asyncio.run(produce(servers.bootstrap_servers, payments, [i.model_dump_json().encode() for i in (paid, other)],
                            keys=[i.payee.encode() for i in (paid, other)]))

        def settlement(instruction: PaymentInstruction, sid: str) -> bytes:
            return Settlement(settlement_id=sid, payment_id=instruction.payment_id, status=SettlementStatus.PAID,
                              settled_on=dt.date(2024, 2, 1), bank_reference=sid).model_dump_json().encode()

        forged = settlement(other, "by-the-revoked-key")
        asyncio.run(produce(servers.bootstrap_servers, settlements, [forged], keys=[other.payment_id.encode()],
                            signed_as="finance:dev"))
        genuine = settlement(paid, "by-kommune")
        asyncio.run(produce(servers.bootstrap_servers, settlements, [genuine], keys=[paid.payment_id.encode()],
                            copied_headers=[kommune.headers(settlements, paid.payment_id.encode(), genuine)]))

        async def settled() -> bool:
            return await _count(database_url, "kind = 'settled'") >= 1

        asyncio.run(_until(settled, "the trusted key's settlement was not booked"))

        async def refused() -> bool:
            return bool(await read_all(servers.bootstrap_servers, in_namespace(DEAD_LETTERS, namespace).name))

        asyncio.run(_until(refused, "the revoked key's settlement was not dead-lettered"))
        dead = [json.loads(v) for _, v in asyncio.run(read_all(servers.bootstrap_servers,
                                                               in_namespace(DEAD_LETTERS, namespace).name))]
        booked = asyncio.run(_count(database_url, "kind = 'settled'"))
        settled_ids = asyncio.run(_count(database_url, f"kind = 'settled' AND payment_id = '{other.payment_id}'"))
        assert ledger.running()
    finally:
        ledger.stop()
    assert booked == 1
    assert settled_ids == 0
    assert [d["reason"] for d in dead] == ["unauthenticated_settlement"]
    assert "revoked" in str(dead[0]["message"])


def test_rotating_the_ledger_key_keeps_the_checkpoints_the_old_key_signed_verifying(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    for name, key in (("old", old), ("new", new)):
        (tmp_path / f"{name}.key").write_text(private_hex(key))
    trusted = tmp_path / "trusted.yaml"

    def key_list(*keys: ListedKey) -> None:
        _write(trusted, sign_document(KeyList(issued_at=dt.datetime.now(dt.UTC), keys=keys), ROOT))

    def listed(key: Ed25519PrivateKey, **window: dt.datetime) -> ListedKey:
        return ListedKey(principal="service:ledger", public_key=public_bytes(key.public_key()).hex(), **window)

    payments = in_namespace(PAYMENTS, namespace).name
    checkpoints = in_namespace(LEDGER_CHECKPOINTS, namespace).name

    def run_ledger(key: str, instructions: list[PaymentInstruction], entries: int) -> None:
        env = {**service_env, "SIGNING_KEY_FILE": str(tmp_path / f"{key}.key"), "TRUSTED_KEYS_FILE": str(trusted)}
        ledger = ServiceProcess("ledger", env, tmp_path / f"ledger-{key}.log")
        ledger.start()
        try:
            asyncio.run(produce(servers.bootstrap_servers, payments, [i.model_dump_json().encode() for i in instructions],
                                keys=[i.payee.encode() for i in instructions]))

            async def anchored() -> bool:
                records = await read_records(servers.bootstrap_servers, checkpoints)
                return sum(len(json.loads(r.value)["entry_hashes"]) for r in records) >= entries

            asyncio.run(_until(anchored, f"the ledger with the {key} key wrote no checkpoints"))
        finally:
            ledger.stop()

    key_list(listed(old))
    run_ledger("old", [_instruction(n) for n in range(1, 6)], 5)
    retired = dt.datetime.now(dt.UTC)
    key_list(listed(old, not_after=retired), listed(new, not_before=retired))
    run_ledger("new", [_instruction(n) for n in range(6, 11)], 10)
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
           "TRUSTED_KEYS_FILE": str(trusted)}
    verify = ["ledger", "verify", "--checkpoints-topic", checkpoints]
    rotated = runner.invoke(app, verify, env=env)
    assert rotated.exit_code == 0, rotated.output
    assert "10 anchored by signed checkpoints" in rotated.stdout
    # Dropping the old key instead of retiring it leaves its checkpoints unverifiable:
    # verify says so rather than passing on the newer ones alone.
    key_list(listed(new, not_before=retired))
    dropped = runner.invoke(app, verify, env=env)
    assert dropped.exit_code == 1, dropped.output
    assert "not anchored" in dropped.stderr
