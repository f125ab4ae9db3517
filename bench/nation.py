"""The verifier's decision core as the number of tenants grows (docs/performance.md,
"Tenants"): `python -m bench.nation [--children-per-tenant N] [--tenants 1,10,98]`.

For each count T: a synthetic nation of Denmark's T largest municipalities
(cli/synthetic/nation.py), each a tenant with its own contract, and N x T children shared
out by their births, so the events grow with the tenants. It admits the institutions' events as ingest does (not measured), then
decides every subject under every contract in force as the verifier does
(`shared/domain/decisions.py: decide_all`, pure: no Kafka, no database) and prints the
CPU time per event and per tenant, and how many outcome decisions it records per subject.
Flat CPU per event means a tenant costs the others nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections import defaultdict

from cli.synthetic.nation import generate_nation
from cli.synthetic.population import to_json_line
from shared.domain.admission import SubjectResolver, admit, as_reported
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.decisions import decide_all
from shared.domain.events import Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.pseudonym import DEVELOPMENT_KEY
from shared.domain.sealing import Sealer, development_private_key

TODAY = dt.date(2026, 6, 30)


def measure(tenants: int, children_per_tenant: int, seed: int) -> dict[str, float]:
    nation = generate_nation(max(tenants, 2), children_per_tenant * tenants, seed)
    contracts = list(nation.contracts[:tenants])
    registry = InstitutionRegistry(nation.institutions)
    sealing = development_private_key()
    sealer, resolver = Sealer(sealing.public_key()), SubjectResolver(DEVELOPMENT_KEY, "k1", sealing)
    streams: dict[str, list[Transition]] = defaultdict(list)
    events = 0
    for event in nation.events:
        raw = sealer.line(to_json_line(event))
        transition = admit(raw, registry, resolver, as_reported(raw))
        if isinstance(transition, Transition):
            streams[transition.subject].append(transition)
            events += 1
    directory = {i.id: InstitutionInfo(i.kind, i.municipality, i.authority) for i in registry.all()}
    started = time.process_time()
    effects = decide_all(ContractBook.of(contracts).in_force(), streams, TODAY, directory)
    cpu_s = time.process_time() - started
    decisions = sum(len(e.decisions) for e in effects.values())
    return {"tenants": tenants, "events": events, "subjects": len(streams),
            "instructions": sum(len(e.instructions) for e in effects.values()),
            "us_per_event": cpu_s / events * 1e6, "us_per_event_per_tenant": cpu_s / events / tenants * 1e6,
            "decisions_per_subject": decisions / len(streams)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", default="1,10,98", help="comma-separated tenant counts")
    parser.add_argument("--children-per-tenant", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(f"{'tenants':>7} {'events':>7} {'instructions':>12} {'CPU us/event':>13} {'us/event/tenant':>16}"
          f" {'decisions/subject':>18}")
    for count in (int(t) for t in args.tenants.split(",")):
        row = measure(count, args.children_per_tenant, args.seed)
        print(f"{row['tenants']:>7} {row['events']:>7,} {row['instructions']:>12,} {row['us_per_event']:>13,.1f}"
              f" {row['us_per_event_per_tenant']:>16,.1f} {row['decisions_per_subject']:>18,.1f}")


if __name__ == "__main__":
    main()
