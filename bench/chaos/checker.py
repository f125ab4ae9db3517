"""The invariants, checked once the load has stopped and the system has drained.

Each is checked against something that does not trust the services' own bookkeeping:
the pure engine run over the input (admission, then every subject's decisions), what is
on the topics, and a rebuild of the verifier into a separate database. One line per
invariant; `Check.ok` is False if any failed.

Money is compared exactly: the instructions on the journal (ids, kinds, payees, amounts)
must be the engine's, run once over the final facts and book (docs/contracts.md,
"Finality"). Nothing is final before the operator's watermarks, which the load publishes
once ingest has forwarded every fact, so no instruction depends on batching, faults or
the moment the mid-run contract version arrived; capped contracts included.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.chaos.load import Load
from services.ingest.dedup import content_hash
from services.ingest.keys import pseudonym_key, sealing_key
from services.verifier.rebuild import read_topic, rebuild_verifier
from shared.domain.admission import SubjectResolver, admit, as_reported
from shared.domain.contracts.book import ContractBook
from shared.domain.contracts.evaluation import InstitutionInfo
from shared.domain.contracts.payments import instruction_outcome_key
from shared.domain.dead_letters import DeadLetter, DeadLetterRecord
from shared.domain.decisions import decide_all
from shared.domain.events import JOURNAL_RECORD, TRANSITIONS_RECORD, PaymentInstruction, PaymentKind, Settlement, Transition
from shared.domain.institutions import InstitutionRegistry
from shared.domain.ledger.journal import plan_journal
from shared.platform.db import recreate_database
from shared.platform.settings import Settings

SAMPLE_MAX = 3  # ids quoted on a failing line


@dataclass(frozen=True)
class Topics:
    transitions: str
    dead_letters: str
    payments: str
    outcomes: str


@dataclass
class Check:
    lines: list[tuple[bool, str, str]] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    def add(self, ok: bool, name: str, detail: str) -> None:
        self.lines.append((ok, name, detail))

    @property
    def ok(self) -> bool:
        return all(ok for ok, _, _ in self.lines)

    def render(self) -> list[str]:
        return [f"{'ok  ' if ok else 'FAIL'}  {name}: {detail}" for ok, name, detail in self.lines]


def _sample(ids: Iterable[str]) -> str:
    items = sorted(ids)
    more = f" (+{len(items) - SAMPLE_MAX} more)" if len(items) > SAMPLE_MAX else ""
    return ", ".join(items[:SAMPLE_MAX]) + more


def net_by_payee(instructions: Iterable[PaymentInstruction]) -> dict[tuple[str, str, str], int]:
    """Net money instructed per (contract, subject, payee): payments minus clawbacks, each
    distinct instruction once."""
    net: dict[tuple[str, str, str], int] = defaultdict(int)
    for i in {i.payment_id: i for i in instructions}.values():
        net[(i.contract_id, i.subject, i.payee)] += i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor
    return {k: v for k, v in net.items() if v}


def reversioned(load: Load) -> set[str]:
    """Contract ids that got a second version during the run."""
    return {load.second_version.contract_id}


# ---- the oracle: the pure engine over the input ------------------------------------------


@dataclass(frozen=True)
class Expected:
    transitions: tuple[Transition, ...]  # admitted, first of each event id, in publishing order
    dead_letters: frozenset[tuple[str, str | None]]  # (reason, record id)
    instructions: tuple[PaymentInstruction, ...]
    today: dt.date


def expected(load: Load, registry: InstitutionRegistry) -> Expected:
    settings = Settings()
    resolver = SubjectResolver(pseudonym_key(settings), settings.pseudonym_key_id, sealing_key(settings))
    first: dict[str, Transition] = {}
    dead: set[tuple[str, str | None]] = set()
    for _, value in load.records:
        outcome = admit(value, registry, resolver, as_reported(value))
        if isinstance(outcome, DeadLetter):
            dead.add((outcome.reason, outcome.record_id))
        elif outcome.event_id not in first:
            first[outcome.event_id] = outcome
        elif content_hash(first[outcome.event_id]) != content_hash(outcome):
            dead.add(("conflicting_duplicate", outcome.event_id))
    transitions = tuple(first.values())
    today = max([t.occurred_on for t in transitions] + list(load.ticks))
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in registry.all()}
    in_force = ContractBook.of(load.all_contracts).in_force()
    streams: dict[str, list[Transition]] = defaultdict(list)
    for transition in transitions:
        streams[transition.subject].append(transition)
    instructions = [i for effects in decide_all(in_force, streams, today, directory).values()
                    for i in effects.instructions]
    return Expected(transitions, frozenset(dead), tuple(instructions), today)


# ---- what the system did -------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    transition_ids: frozenset[str]
    dead_letters: tuple[DeadLetterRecord, ...]
    journal: tuple[PaymentInstruction | Settlement, ...]  # the payments topic, in order


async def observe(bootstrap: str, topics: Topics) -> Observed:
    transition_ids = set()
    # The checker sees everything, as the broker's super user: no component may.
    for value in await read_topic(bootstrap, topics.transitions, principal="admin"):
        parsed = TRANSITIONS_RECORD.validate_json(value)
        if isinstance(parsed, Transition):
            transition_ids.add(parsed.event_id)
    dead = tuple(DeadLetterRecord.model_validate_json(v)
                 for v in await read_topic(bootstrap, topics.dead_letters, principal="admin"))
    journal = tuple(JOURNAL_RECORD.validate_json(v) for v in await read_topic(bootstrap, topics.payments, principal="admin"))
    return Observed(frozenset(transition_ids), dead, journal)


def outstanding(instructions: Iterable[PaymentInstruction]) -> dict[str, PaymentInstruction]:
    """Payments instructed and not clawed back, by payment id."""
    unique = {i.payment_id: i for i in instructions}
    reversed_ids = {i.reverses_payment_id for i in unique.values() if i.kind == PaymentKind.CLAWBACK}
    return {pid: i for pid, i in unique.items() if i.kind == PaymentKind.PAYMENT and pid not in reversed_ids}


# ---- the invariants ------------------------------------------------------------------------


def check_accounted(check: Check, want: Expected, seen: Observed, stored_event_ids: set[str]) -> None:
    admitted = {t.event_id for t in want.transitions}
    dead_seen = {(d.reason, d.record_id) for d in seen.dead_letters}
    missing = admitted - (seen.transition_ids & stored_event_ids)
    unexpected = seen.transition_ids - admitted
    dead_missing = want.dead_letters - dead_seen
    reasons = Counter(reason for reason, _ in want.dead_letters)
    check.figures.update(events_admitted=len(admitted), dead_letters_expected=len(want.dead_letters))
    check.add(not (missing or unexpected or dead_missing), "every input event accounted for",
              f"{len(admitted):,} distinct events became transitions (on the topic and in the verifier's store), "
              f"{len(want.dead_letters)} became dead letters with their reason "
              f"({', '.join(f'{k} {v}' for k, v in sorted(reasons.items()))})"
              + (f"; MISSING transitions {_sample(missing)}" if missing else "")
              + (f"; UNEXPECTED transitions {_sample(unexpected)}" if unexpected else "")
              + (f"; MISSING dead letters {_sample(f'{r}:{i}' for r, i in dead_missing)}" if dead_missing else ""))


def check_engine(check: Check, load: Load, want: Expected, seen: Observed) -> None:
    """Exact: the same instruction ids, kinds, payees and amounts as the engine run once
    over the final facts and book. Nothing is final before the operator's watermark, which
    comes after every fact and contract version, so no instruction depends on timing."""
    published = [i for i in seen.journal if isinstance(i, PaymentInstruction)]
    live_net, engine_net = net_by_payee(published), net_by_payee(want.instructions)
    differ = {k for k in set(live_net) | set(engine_net) if live_net.get(k) != engine_net.get(k)}
    live = {(i.payment_id, i.kind.value, i.payee, i.amount_minor) for i in published}
    engine = {(i.payment_id, i.kind.value, i.payee, i.amount_minor) for i in want.instructions}
    clawed = sum(i.amount_minor for i in {i.payment_id: i for i in published}.values()
                 if i.kind == PaymentKind.CLAWBACK)
    check.figures.update(payments_outstanding=len(outstanding(published)), payees_owed=len(live_net),
                         owed_minor=sum(live_net.values()), clawed_back_minor=clawed)
    check.add(not differ and live == engine, "payment instructions equal the pure engine's",
              f"the same {len(engine):,} instructions (id, kind, payee, amount) as the engine over the final "
              f"facts and book, {sum(engine_net.values()):,} minor units net (capped contracts and the "
              f"contract version that arrived mid-run included), {clawed:,} clawed back"
              + (f"; NET DIFFERS for {_sample(f'{c}/{s[:12]}/{p}' for c, s, p in differ)}" if differ else "")
              + (f"; only live {_sample(p for p, *_ in live - engine)}" if live - engine else "")
              + (f"; only engine {_sample(p for p, *_ in engine - live)}" if engine - live else ""))


def net_by_line(instructions: Sequence[PaymentInstruction]) -> dict[tuple[str, str, str], int]:
    """Net money per outcome line (outcome key, payee, role), each distinct instruction
    once: a correction moves a line by the difference, so its net is what it owes."""
    net: dict[tuple[str, str, str], int] = defaultdict(int)
    for i in {i.payment_id: i for i in instructions}.values():
        line = (instruction_outcome_key(i), i.payee, i.payee_role)
        net[line] += i.amount_minor if i.kind == PaymentKind.PAYMENT else -i.amount_minor
    return {k: v for k, v in net.items() if v}


def check_duplicates(check: Check, seen: Observed, ledger_instruction_ids: Counter[str]) -> None:
    copies: dict[str, set[str]] = defaultdict(set)
    counts: Counter[str] = Counter()
    for record in seen.journal:
        if isinstance(record, PaymentInstruction):
            copies[record.payment_id].add(record.model_dump_json())
            counts[record.payment_id] += 1
    conflicting = {pid for pid, versions in copies.items() if len(versions) > 1}
    redelivered = sum(n - 1 for n in counts.values())
    twice_in_ledger = {pid for pid, n in ledger_instruction_ids.items() if n > 1}
    check.figures.update(payments_topic_redeliveries=redelivered, instructions_on_topic=len(counts))
    check.add(not conflicting and not twice_in_ledger, "no duplicate beyond at-least-once",
              f"{len(counts):,} instructions on the payments topic, {redelivered} identical redeliveries "
              f"(at-least-once, absorbed by payment id), none with two contents; each once in the ledger"
              + (f"; CONFLICTING ids on the topic {_sample(conflicting)}" if conflicting else "")
              + (f"; TWICE in the ledger {_sample(twice_in_ledger)}" if twice_in_ledger else ""))


def check_nothing_lost(check: Check, seen: Observed, ledger_instruction_ids: Counter[str],
                       verifier_ids: set[str], outbox_left: int) -> None:
    on_topic = {r.payment_id for r in seen.journal if isinstance(r, PaymentInstruction)}
    not_in_ledger = on_topic - set(ledger_instruction_ids)
    not_published = verifier_ids - on_topic
    check.add(not (not_in_ledger or not_published or outbox_left), "no payment lost",
              f"all {len(verifier_ids):,} instructions the verifier decided are on the journal and in the ledger; "
              f"outbox empty"
              + (f"; NOT IN LEDGER {_sample(not_in_ledger)}" if not_in_ledger else "")
              + (f"; NEVER PUBLISHED {_sample(not_published)}" if not_published else "")
              + (f"; {outbox_left} outbox rows left" if outbox_left else ""))


def check_settlements(check: Check, sent: Sequence[Settlement], applied: Counter[str],
                      applied_ids: set[str], seen: Observed) -> None:
    twice = {pid for pid, n in applied.items() if n > 1}
    dead = {(d.reason, d.record_id) for d in seen.dead_letters if d.service == "ledger"}
    first_answers = {s.settlement_id for s in sent if s.settlement_id.startswith("bank-")
                     and not s.settlement_id.startswith("bank-unknown")}
    second_answers = {s.settlement_id for s in sent if s.settlement_id.startswith("bank2-")}
    unknown = {s.settlement_id for s in sent if s.settlement_id.startswith("bank-unknown")}
    not_applied = first_answers - applied_ids
    not_rejected = {i for i in second_answers if ("already_settled", i) not in dead}
    unknown_missed = {i for i in unknown if ("unknown_payment", i) not in dead}
    check.figures.update(settlements_sent=len(sent), settlements_applied=len(applied_ids))
    check.add(not (twice or not_applied or not_rejected or unknown_missed), "no settlement applied twice",
              f"{len(sent):,} settlements sent ({len(sent) - len({s.settlement_id for s in sent})} resent), "
              f"{len(applied_ids):,} applied once each; {len(second_answers)} second answers dead-lettered "
              f"already_settled, {len(unknown)} unknown_payment"
              + (f"; SETTLED TWICE {_sample(twice)}" if twice else "")
              + (f"; NOT APPLIED {_sample(not_applied)}" if not_applied else "")
              + (f"; NOT REJECTED {_sample(not_rejected)}" if not_rejected else "")
              + (f"; UNKNOWN NOT REJECTED {_sample(unknown_missed)}" if unknown_missed else ""))


def check_ledger_verify(check: Check, env: dict[str, str]) -> None:
    stafet = Path(sys.executable).parent / "stafet"
    run = subprocess.run([str(stafet), "ledger", "verify"], env={**os.environ, **env}, capture_output=True,
                         text=True, check=False, timeout=600)
    said = (run.stdout.strip() or run.stderr.strip()).splitlines()
    check.add(run.returncode == 0, "stafet ledger verify", f"exit {run.returncode}: {said[-1] if said else ''}")


def check_balances(check: Check, seen: Observed, ledger_balances: dict[str, int]) -> None:
    plan = plan_journal(seen.journal, {})
    folded: dict[str, int] = defaultdict(int)
    for entry in plan.entries:
        for line in entry.lines:
            folded[line.account] += line.credit_minor - line.debit_minor
    folded_nonzero = {k: v for k, v in folded.items() if v}
    differ = {k for k in set(folded_nonzero) | set(ledger_balances) if folded_nonzero.get(k, 0) != ledger_balances.get(k, 0)}
    check.figures.update(ledger_entries_folded=len(plan.entries))
    check.add(not differ, "balances equal the fold of the journal",
              f"{len(plan.entries):,} entries folded from the payments topic in order, "
              f"{len(folded_nonzero)} accounts, every balance equal"
              + (f"; DIFFERENT {_sample(differ)}" if differ else ""))


async def check_rebuild(check: Check, live_url: str, admin_url: str, bootstrap: str,
                        topics: Topics, directory: dict[str, InstitutionInfo]) -> None:
    """Rebuild the verifier into a copy of the live database, then compare the two."""
    rebuilt_url = await recreate_database(admin_url, "chaos_rebuild", template=live_url.rpartition("/")[2])
    await rebuild_verifier(rebuilt_url, bootstrap, topics.transitions, directory)
    (live_net, live_outcomes), (again_net, again_outcomes) = (await _verifier_state(live_url),
                                                              await _verifier_state(rebuilt_url))
    payments_differ = {k for k in set(live_net) | set(again_net) if live_net.get(k) != again_net.get(k)}
    # An outcome the live verifier recorded and later withdrew (its trigger retracted) stays
    # on record as rejected/evidence_withdrawn; a rebuild never decided it in the first place.
    withdrawn = {k for k, v in live_outcomes.items() if v[:2] == ("rejected", "evidence_withdrawn")
                 and k not in again_outcomes}
    outcomes_differ = {k for k in (set(live_outcomes) - withdrawn) | set(again_outcomes)
                       if live_outcomes.get(k) != again_outcomes.get(k)}
    check.add(not payments_differ and not outcomes_differ, "the verifier rebuild equals the live state",
              f"replayed into a copy of the database: net money for {len(again_net):,} (contract, subject, payee) "
              f"and {len(again_outcomes):,} outcome decisions equal the live verifier's "
              f"({len(withdrawn)} withdrawn live, never decided in the rebuild)"
              + (f"; MONEY DIFFERS {_sample(f'{c}/{s[:12]}/{p}' for c, s, p in payments_differ)}"
                 if payments_differ else "")
              + (f"; OUTCOMES DIFFER {_sample(outcomes_differ)}, the first live "
                 f"{live_outcomes.get(min(outcomes_differ))} rebuilt {again_outcomes.get(min(outcomes_differ))}"
                 if outcomes_differ else ""))


async def _verifier_state(database_url: str) -> tuple[dict[tuple[str, str, str], int], dict[str, tuple[str, str, int]]]:
    """(net money per (contract, subject, payee), outcome key -> (status, reason, owed))."""
    connection = await asyncpg.connect(database_url)
    try:
        instructions = [PaymentInstruction.model_validate_json(r["instruction"])
                        for r in await connection.fetch("SELECT instruction FROM verifier_payments")]
        outcomes = {r["outcome_key"]: (r["status"], str(r["reason"]), int(r["owed_minor"]))
                    for r in await connection.fetch("SELECT outcome_key, status, reason, owed_minor FROM verifier_outcomes")}
    finally:
        await connection.close()
    return net_by_payee(instructions), outcomes


@dataclass(frozen=True)
class LedgerFacts:
    instruction_ids: Counter[str]
    settlements_per_payment: Counter[str]
    settlement_ids: set[str]
    balances: dict[str, int]
    verifier_payment_ids: set[str]
    verifier_event_ids: set[str]
    outbox_left: int


async def ledger_facts(database_url: str) -> LedgerFacts:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT kind, payment_id, settlement_id FROM ledger_entries")
        balances = {r["account"]: int(r["balance"]) for r in await connection.fetch(
            "SELECT account, sum(credit_minor) - sum(debit_minor) AS balance FROM ledger_lines GROUP BY account")}
        verifier_ids = {r["payment_id"] for r in await connection.fetch("SELECT payment_id FROM verifier_payments")}
        event_ids = {r["event_id"] for r in await connection.fetch("SELECT event_id FROM verifier_events")}
        outbox = int(await connection.fetchval("SELECT count(*) FROM verifier_outbox"))
    finally:
        await connection.close()
    return LedgerFacts(
        instruction_ids=Counter(r["payment_id"] for r in rows if r["kind"] in ("payment", "clawback")),
        settlements_per_payment=Counter(r["payment_id"] for r in rows if r["kind"] in ("settled", "failed")),
        settlement_ids={r["settlement_id"] for r in rows if r["settlement_id"]},
        balances={k: v for k, v in balances.items() if v},
        verifier_payment_ids=verifier_ids, verifier_event_ids=event_ids, outbox_left=outbox)


async def check_all(check: Check, load: Load, registry_file: Path, sent: Sequence[Settlement], bootstrap: str,
                    topics: Topics, database_url: str, admin_url: str, env: dict[str, str]) -> None:
    registry = InstitutionRegistry.from_file(registry_file)
    want = expected(load, registry)
    seen = await observe(bootstrap, topics)
    facts = await ledger_facts(database_url)
    check_accounted(check, want, seen, facts.verifier_event_ids)
    check_engine(check, load, want, seen)
    check_duplicates(check, seen, facts.instruction_ids)
    check_nothing_lost(check, seen, facts.instruction_ids, facts.verifier_payment_ids, facts.outbox_left)
    check_settlements(check, sent, facts.settlements_per_payment, facts.settlement_ids, seen)
    check_ledger_verify(check, env)
    check_balances(check, seen, facts.balances)
    directory = {i.id: InstitutionInfo(i.kind, i.municipality) for i in registry.all()}
    await check_rebuild(check, database_url, admin_url, bootstrap, topics, directory)
