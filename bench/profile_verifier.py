"""`make profile`: the verifier's batch processing in-process, timed and profiled.

No Kafka: synthetic events are admitted with the pure ingest code, then fed to
`process_batch` (the verifier's one-transaction-per-batch core) against a real
PostgreSQL, in batches of 500 under the four example contracts. Prints events/s and a
pyinstrument profile, so an optimisation can be measured before and after on the same
machine. Needs a database: DATABASE_URL, or the one `make up` starts.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from pyinstrument import Profiler

from services.verifier.batch import process_batch
from shared.contracts.book import ContractBook
from shared.contracts.evaluation import InstitutionInfo
from shared.contracts.loader import load_contract
from shared.credentials import database_url
from shared.db import create_pool, migrate, recreate_database
from shared.institutions import InstitutionRegistry
from shared.reporting.simulate import transitions_of
from shared.settings import REPO_ROOT, Settings
from shared.synthetic import generate, to_json_line

CONTRACTS = ("mobility-bonus.yaml", "employment-pbr.yaml", "next-stage-bonus.yaml", "sib-youth-education.yaml")
BATCH = 500
DATABASE = "stafet_profile"


async def main(subjects: int, profile: bool) -> None:
    institutions, events = generate(subjects, seed=1, municipalities=3)
    registry = InstitutionRegistry(institutions)
    transitions, _ = transitions_of((to_json_line(e) for e in events), registry)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in institutions}
    book = ContractBook.of(load_contract(REPO_ROOT / "examples" / "contracts" / name) for name in CONTRACTS)
    # As the owner role, which may create databases (the local stack's, by default).
    url = await recreate_database(database_url("owner", Settings()).rpartition("/")[0] + "/postgres", DATABASE)
    await migrate(url)
    pool = await create_pool(url, max_size=2)
    profiler = Profiler(async_mode="enabled") if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.start()
    for first in range(0, len(transitions), BATCH):
        await process_batch(pool, book, transitions[first:first + BATCH], directory)
    if profiler:
        profiler.stop()
    seconds = time.perf_counter() - started
    await pool.close()
    print(f"{len(transitions):,} events in {seconds:.2f}s: {len(transitions) / seconds:,.0f} events/s"
          f"{' (profiled: slower than unprofiled)' if profile else ''}")
    if profiler:
        print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=5000)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.subjects, not arguments.no_profile))
