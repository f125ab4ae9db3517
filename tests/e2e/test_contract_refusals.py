"""The verifier refuses a signed contract version that would pay wrongly or never (issue
30): a payee its registry does not know (it instructed DKK 1,000.00 to
`ghost-provider-ltd`), or a second version taking effect on the day another does. Each is
dead-lettered with its reason code and never held; a good version next to them is."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest

from shared.domain.contracts.loader import parse_contract
from shared.platform.processes import ServiceProcess
from shared.platform.topics import CONTRACTS, DEAD_LETTERS, in_namespace
from tests.kafka_helpers import produce, read_all
from tests.servers import Servers

pytestmark = pytest.mark.e2e
TIMEOUT_S = 90.0


def bonus(version: int, payee: str, effective_from: str) -> str:
    return f"""contract_id: refusal-bonus
version: {version}
payer: sonderborg-kommune
currency: DKK
period: {{start: 2020-01-01, end: 2030-12-31}}
effective_from: {effective_from}
outcomes:
  - id: completed
    trigger: {{event: education_completed}}
    price: {{kind: fixed, amount_minor: 100000}}
    distribution: {{kind: direct, payee: {{role: institution, institution: {payee}}}}}
"""


async def held(database_url: str) -> list[int]:
    connection = await asyncpg.connect(database_url)
    try:
        return sorted(r["version"] for r in await connection.fetch(
            "SELECT version FROM verifier_contracts WHERE contract_id = 'refusal-bonus'"))
    finally:
        await connection.close()


async def test_a_ghost_payee_and_a_same_day_twin_are_dead_lettered_and_never_held(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    good = parse_contract(bonus(1, "alsskolen", "2024-01-01"))
    ghost = parse_contract(bonus(2, "ghost-provider-ltd", "2025-01-01"))
    twin = parse_contract(bonus(3, "alsskolen", "2024-01-01"))
    verifier = ServiceProcess("verifier", service_env, tmp_path / "verifier.log")
    verifier.start()
    try:
        versions = [good, ghost, twin]
        await produce(servers.bootstrap_servers, in_namespace(CONTRACTS, namespace).name,
                      [c.model_dump_json().encode() for c in versions],
                      keys=[f"{c.contract_id}@{c.version}".encode() for c in versions])
        deadline = asyncio.get_running_loop().time() + TIMEOUT_S
        letters: list[dict[str, object]] = []
        while len(letters) < 2 or await held(database_url) != [1]:
            assert asyncio.get_running_loop().time() < deadline, (letters, await held(database_url))
            await asyncio.sleep(0.5)
            letters = [json.loads(v) for _, v in await read_all(servers.bootstrap_servers,
                                                                in_namespace(DEAD_LETTERS, namespace).name)]
    finally:
        verifier.stop()
    reasons = sorted(str(letter.get("reason")) for letter in letters)
    assert reasons == ["same_effective_from", "unknown_payee"], letters
    assert await held(database_url) == [1]
