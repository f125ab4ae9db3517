"""`make profile-ingest`: ingest's admission path in-process, timed by CPU.

No Kafka and no PostgreSQL: synthetic institution events (cli/synthetic/population.py), sealed
and signed as `stafet publish` signs them (a signature per tree of records; with
`--single-signatures` each record alone, as before batch signatures), go through what
ingest's handler does per record (the signature check, `admit`, the transition's JSON)
and per batch (signing the transitions it forwards, the same way). Deduplication in
PostgreSQL and the send are not in it. Prints CPU seconds per 100,000 events of this
process (user+sys, `time.process_time`) in all and per step, so that a change to the
path can be measured before and after on the same machine.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from aiokafka import ConsumerRecord

from bench.measure import per_100k
from cli.publish import PUBLISH_WINDOW
from cli.synthetic.population import generate, to_json_line
from services.ingest.dedup import Forwardable
from services.ingest.keys import pseudonym_key, sealing_key
from shared.domain.admission import SubjectResolver, admit
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.sealing import Sealer, development_private_key
from shared.domain.signing import RecordSigner
from shared.platform.settings import Settings
from shared.platform.trust import trusted_keys

EVENTS_TOPIC, TRANSITIONS_TOPIC = "bench.institution-events.v1", "bench.transitions.v1"
Headers = list[tuple[str, bytes]]


def signed(signer: RecordSigner, records: list[tuple[str, bytes, bytes]], single: bool) -> list[Headers]:
    if single:
        return [signer.headers(*record) for record in records]
    return signer.batch_headers(records)


def published(subjects: int, seed: int, single: bool) -> tuple[InstitutionRegistry, list[ConsumerRecord[Any, Any]]]:
    """The events as ingest consumes them: sealed, keyed and signed by each institution,
    a publishing window at a time (cli/publish.py)."""
    institutions, generated = generate(subjects, seed=seed)
    sealer = Sealer(development_private_key().public_key())
    signers: dict[str, RecordSigner] = {}
    sealed = [sealer.sealed(to_json_line(event)) for event in generated]
    records: list[ConsumerRecord[Any, Any]] = []
    for first in range(0, len(sealed), PUBLISH_WINDOW):
        by_institution: dict[str, list[tuple[bytes, bytes]]] = {}
        for key, value, reported_by in sealed[first:first + PUBLISH_WINDOW]:
            by_institution.setdefault(reported_by, []).append((key, value))
        for reported_by, group in by_institution.items():
            signer = signers.setdefault(reported_by, RecordSigner.development(f"institution:{reported_by}"))
            for (key, value), headers in zip(group, signed(signer, [(EVENTS_TOPIC, k, v) for k, v in group], single),
                                             strict=True):
                records.append(ConsumerRecord(EVENTS_TOPIC, 0, len(records), 0, 0, key, value, None,
                                              len(key), len(value), headers))
    return InstitutionRegistry(institutions), records


def main(subjects: int, seed: int, batch: int, single: bool) -> None:
    registry, records = published(subjects, seed, single)
    settings = Settings()
    trust = trusted_keys(settings, registry)
    resolver = SubjectResolver(pseudonym_key(settings), settings.pseudonym_key_id, sealing_key(settings))
    ingest = RecordSigner.development("service:ingest")
    cpu = {"signature check": 0.0, "admission": 0.0, "signing": 0.0}
    forwarded = 0
    for first in range(0, len(records), batch):
        consumed = records[first:first + batch]
        started = time.process_time()
        who = [trust.authenticate(r.topic, r.key, r.value, r.headers) for r in consumed]
        checked = time.process_time()
        admitted = [Forwardable.of(outcome) for outcome in (admit(r.value, registry, resolver, signer)
                                                            for r, signer in zip(consumed, who, strict=True))
                    if isinstance(outcome, Transition)]
        done = time.process_time()
        signed(ingest, [(TRANSITIONS_TOPIC, a.transition.subject.encode(), a.value) for a in admitted], single)
        cpu["signature check"] += checked - started
        cpu["admission"] += done - checked
        cpu["signing"] += time.process_time() - done
        forwarded += len(admitted)
    total = sum(cpu.values())
    steps = ", ".join(f"{name} {per_100k(seconds, len(records)):.1f}" for name, seconds in cpu.items())
    print(f"{len(records):,} events ({forwarded:,} forwarded, {'single' if single else 'batch'} signatures, "
          f"batches of {batch:,}): CPU {per_100k(total, len(records)):.1f} s per 100k events "
          f"(this process, user+sys): {steps}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--single-signatures", action="store_true",
                        help="sign each record alone (as before batch signatures) instead of per batch")
    arguments = parser.parse_args()
    main(arguments.subjects, arguments.seed, arguments.batch, arguments.single_signatures)
