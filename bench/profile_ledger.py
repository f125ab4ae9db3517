"""`make profile-ledger`: the ledger's journal path in-process, timed and profiled.

No Kafka: synthetic payment instructions, signed as the verifier's outbox relay signs
them (a signature per tree of records, each with its proof; `--single-signatures` signs
each record alone, as before batch signatures), go through
what the projector does per record (`admit_journal`: the signature and the schema) and
per batch (`apply_journal`: plan, chain hashes, inserts, commit) against a real
PostgreSQL that this script starts on a free port in a temporary folder. Prints
payments/s and CPU seconds per 100,000 payments of this process (PostgreSQL's own CPU is
not in it), and with --profile a pyinstrument profile, so that an optimisation can be
measured before and after on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from pyinstrument import Profiler

from bench.measure import own_cpu_s, per_100k
from services.ledger.authenticity import Refused, admit_journal
from services.ledger.store import apply_journal
from services.verifier.relay import RELAY_BATCH_MAX
from shared.domain.events import PaymentInstruction, PaymentKind
from shared.domain.signing import RecordSigner
from shared.platform.db import create_pool, migrate, recreate_database
from shared.platform.settings import Settings
from shared.platform.stack import LocalStack, free_port
from shared.platform.trust import trusted_keys

TOPIC = "bench.payments.v1"


def journal(count: int, single: bool = False) -> list[ConsumerRecord[Any, Any]]:
    """`count` payment instructions as journal records, signed as the verifier signs them:
    a relay round at a time (services/verifier/relay.py), or each alone with `single`."""
    signer = RecordSigner.development("service:verifier")
    records = []
    for n in range(count):
        payment_id = hashlib.sha256(f"payment-{n}".encode()).hexdigest()[:32]
        instruction = PaymentInstruction(
            payment_id=payment_id, kind=PaymentKind.PAYMENT, contract_id="mobility-bonus", contract_version=1,
            outcome_id=f"outcome-{n // 3}", subject="k1:" + hashlib.sha256(str(n // 9).encode()).hexdigest(),
            payer="soenderborg-kommune", payee=f"institution-{n % 40}", amount_minor=1_000 + n % 7_919,
            currency="DKK", occurred_on=dt.date(2020, 1, 1) + dt.timedelta(days=n % 1_500),
            trigger_event_id=f"ev-{n}")
        records.append((TOPIC, payment_id.encode(), instruction.model_dump_json().encode()))
    headers = ([signer.headers(*record) for record in records] if single else
               [h for first in range(0, count, RELAY_BATCH_MAX)
                for h in signer.batch_headers(records[first:first + RELAY_BATCH_MAX])])
    return [ConsumerRecord(TOPIC, 0, n, 0, 0, key, value, None, len(key), len(value), signed)
            for n, ((_, key, value), signed) in enumerate(zip(records, headers, strict=True))]


async def main(payments: int, batch: int, profile: bool, single: bool) -> None:
    records = journal(payments, single)
    with tempfile.TemporaryDirectory(prefix="stafet-profile-ledger-") as directory:
        stack = LocalStack(Path(directory), postgres_port=free_port(), database="postgres")
        await asyncio.to_thread(stack.prepare_credentials)
        await asyncio.to_thread(stack.start_postgres)
        try:
            url = await recreate_database(stack.role_url("owner", "postgres"), "stafet_profile_ledger")
            await migrate(url)
            pool = await create_pool(url, max_size=2)
            trust = trusted_keys(Settings())
            profiler = Profiler(async_mode="enabled") if profile else None
            started, cpu = time.perf_counter(), own_cpu_s()
            if profiler:
                profiler.start()
            for first in range(0, len(records), batch):
                admitted = [admit_journal(r, trust) for r in records[first:first + batch]]
                await apply_journal(pool, [a for a in admitted if not isinstance(a, Refused)])
            if profiler:
                profiler.stop()
            seconds, cpu = time.perf_counter() - started, own_cpu_s() - cpu
            async with pool.acquire() as connection:
                entries = await connection.fetchval("SELECT count(*) FROM ledger_entries")
            await pool.close()
        finally:
            stack.down()
    print(f"{payments:,} payments ({entries:,} entries, {'single' if single else 'batch'} signatures) in "
          f"{seconds:.2f}s: {payments / seconds:,.0f} payments/s; "
          f"CPU {per_100k(cpu, payments):.1f} s per 100k payments (this process, user+sys)"
          f"{' (profiled: slower than unprofiled)' if profile else ''}")
    if profiler:
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile (slower)")
    parser.add_argument("--single-signatures", action="store_true",
                        help="sign each payment alone (as before batch signatures) instead of per relay round")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.payments, arguments.batch, arguments.profile, arguments.single_signatures))
