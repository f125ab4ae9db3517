"""The chaos run's load: what institutions, operators and finance send, at a fixed rate.

- Institution events: the benchmark's synthetic population (`cli/synthetic/population.py`,
  sealed as `stafet publish` sends them), with more duplicates, late facts and
  retractions than the default rates, plus conflicting duplicates (same event id,
  other content) and malformed records, which must become dead letters.
- Contract versions: four contracts at the start, and a second version of the
  next-stage bonus (a new price from a date) part-way through, which re-evaluates
  every subject.
- Watermarks (`stafet clock`, on every transitions partition): two, once ingest has
  forwarded every fact, so that sustainment periods elapse and every outcome is final.
- A finance office: answers payment instructions as they appear on the journal (paid,
  failed, some twice, some for a payment already answered, a few for unknown payments).

Everything is drawn from the seed. Publishing goes on through broker outages: a chunk
that fails is sent again (duplicates on the input topic are part of the load).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from bench.run import fill
from cli.signed import send_signed
from cli.synthetic.population import Rates, generate, to_json_line
from shared.domain.contracts.loader import load_contract
from shared.domain.contracts.model import Contract
from shared.domain.events import JOURNAL_RECORD, ClockTick, PaymentInstruction, PaymentKind, Settlement, SettlementStatus
from shared.domain.institutions import Institution
from shared.domain.sealing import Sealer, development_private_key
from shared.domain.signing import RecordSigner
from shared.platform.credentials import kafka_options
from shared.platform.settings import REPO_ROOT
from shared.platform.trust import DEVELOPMENT_OPERATOR

CONTRACT_FILES = ("next-stage-bonus.yaml", "mobility-bonus.yaml", "employment-pbr.yaml", "sib-youth-education.yaml")
EVENTS_PER_SUBJECT = 9  # about, with these rates (for sizing the population)
RATES = Rates(late_report=0.10, duplicate=0.03, retraction=0.03)
CONFLICTING_SHARE = 0.003
MALFORMED_SHARE = 0.002
SECOND_VERSION_AT = 0.4  # share of the load published before next-stage-bonus v2
FINAL_TICK = dt.date(2027, 6, 30)
MID_TICK = dt.date(2026, 9, 1)
CHUNK_S = 1.0  # records are published in chunks of a second's worth; a failed chunk is resent
RETRY_PAUSE_S = 1.0
FINANCE_EVERY_S = 3.0
PAID_SHARE, FAILED_SHARE, TWICE_SHARE, CONFLICT_SHARE = 0.6, 0.05, 0.1, 0.03
UNKNOWN_PAYMENTS = 3


@dataclass(frozen=True)
class Load:
    registry: tuple[Institution, ...]
    records: tuple[tuple[bytes, bytes], ...]  # (key, sealed record), in publishing order
    contracts: tuple[Contract, ...]  # in force from the start
    second_version: Contract
    ticks: tuple[dt.date, ...]

    @property
    def all_contracts(self) -> tuple[Contract, ...]:
        return (*self.contracts, self.second_version)


def build(seed: int, events: int) -> Load:
    """About `events` institution records (before the extra duplicates), from the seed."""
    chance = random.Random(seed)
    registry, generated = generate(max(1, events // EVENTS_PER_SUBJECT), seed=seed, rates=RATES)
    sealer = Sealer(development_private_key().public_key())
    records: list[tuple[bytes, bytes]] = []
    conflicting: list[tuple[bytes, bytes]] = []
    for event in generated:
        key, value = sealer.keyed(to_json_line(event))
        records.append((key, value))
        if chance.random() < CONFLICTING_SHARE:
            # The same event id again, with another date: an institution's mistake.
            other = json.loads(value)
            other["occurred_on"] = (dt.date.fromisoformat(other["occurred_on"]) + dt.timedelta(days=1)).isoformat()
            conflicting.append((key, json.dumps(other, separators=(",", ":")).encode()))
        if chance.random() < MALFORMED_SHARE:
            records.append((key, value[: len(value) // 2]))  # cut off mid-record: malformed JSON
    for late in conflicting:  # after the original, on the same partition (same key)
        records.insert(chance.randrange(len(records) // 2, len(records) + 1), late)
    contracts = tuple(load_contract(REPO_ROOT / "examples" / "contracts" / name) for name in CONTRACT_FILES)
    bonus = contracts[0]
    second = bonus.model_copy(update={"version": bonus.version + 1, "effective_from": dt.date(2020, 1, 1),
                                      "title": bonus.title + " (v2: a new price from 2020)"})
    second = _with_price(second, 750_000)
    return Load(registry, tuple(records), contracts, second, (MID_TICK, FINAL_TICK))


def _with_price(contract: Contract, amount_minor: int) -> Contract:
    outcomes = tuple(o.model_copy(update={"price": o.price.model_copy(update={"amount_minor": amount_minor})})
                     for o in contract.outcomes)
    return Contract.model_validate({**contract.model_dump(), "outcomes": [o.model_dump() for o in outcomes]})


# Who writes each topic the chaos load publishes to: institutions their events, operators
# contracts and clock ticks, finance its settlements.
WRITER = {"institution-events": "institution", "contracts": "operator", "transitions": "operator",
          "settlements": "finance"}


async def send_retrying(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                        say: Callable[[str], None], pace_per_s: float | None = None) -> int:
    """Publish with the benchmark's `fill`, again and again until the broker takes it;
    return how many attempts failed (each may have left duplicates behind)."""
    failures = 0
    # Each topic as the principal that writes it in an installation (docs/security.md).
    principal = WRITER[topic.split(".")[1]]
    while True:
        try:
            await fill(bootstrap, topic, records, pace_per_s=pace_per_s, principal=principal)
            return failures
        except (KafkaError, OSError, TimeoutError) as error:
            failures += 1
            if failures == 1 or failures % 10 == 0:
                say(f"  load   publishing to {topic.split('.')[1]} failed ({type(error).__name__}); retrying")
            await asyncio.sleep(RETRY_PAUSE_S)


@dataclass
class Publisher:
    bootstrap: str
    topics: dict[str, str]  # institution-events, contracts, transitions -> names
    load: Load
    rate_per_s: float
    say: Callable[[str], None]
    published: int = 0
    resent_chunks: int = 0

    async def run(self) -> None:
        records = list(self.load.records)
        chunk = max(1, int(self.rate_per_s * CHUNK_S))
        started = time.monotonic()
        milestones = {int(len(records) * SECOND_VERSION_AT): self.second_version}
        for first in range(0, len(records), chunk):
            for at, action in milestones.items():
                if first <= at < first + chunk:
                    await action()
            due = started + first / self.rate_per_s
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            part = records[first:first + chunk]
            self.resent_chunks += await send_retrying(self.bootstrap, self.topics["institution-events"], part,
                                                      self.say, pace_per_s=self.rate_per_s)
            self.published += len(part)

    async def contracts(self) -> None:
        await send_retrying(self.bootstrap, self.topics["contracts"],
                            [_contract_record(c) for c in self.load.contracts], self.say)

    async def second_version(self) -> None:
        contract = self.load.second_version
        self.say(f"  load   contract {contract.contract_id} v{contract.version} applied")
        await send_retrying(self.bootstrap, self.topics["contracts"], [_contract_record(contract)], self.say)

    async def tick(self, today: dt.date) -> None:
        """A watermark on every transitions partition, as `stafet clock` sends it."""
        self.say(f"  load   watermark {today}")
        while True:
            try:
                await send_signed(self.bootstrap, "stafet-chaos-clock", self.topics["transitions"],
                                  [(b"clock", ClockTick(today=today).model_dump_json().encode())],
                                  RecordSigner.development(DEVELOPMENT_OPERATOR), principal="operator",
                                  every_partition=True)
                return
            except (KafkaError, OSError, TimeoutError) as error:
                self.say(f"  load   the watermark failed ({type(error).__name__}); retrying")
                await asyncio.sleep(RETRY_PAUSE_S)


def _contract_record(contract: Contract) -> tuple[bytes, bytes]:
    return f"{contract.contract_id}@{contract.version}".encode(), contract.model_dump_json().encode()


@dataclass
class FinanceOffice:
    """Answers payment instructions from the journal, deterministically per payment id."""

    bootstrap: str
    payments_topic: str
    settlements_topic: str
    seed: int
    say: Callable[[str], None]
    sent: list[Settlement] = field(default_factory=list)  # every settlement sent, duplicates included
    _answered: set[str] = field(default_factory=set)
    _position: int = 0
    _unknown_sent: int = 0

    def _roll(self, payment_id: str, what: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{what}:{payment_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def answers_to(self, instruction: PaymentInstruction) -> list[Settlement]:
        pid = instruction.payment_id
        roll = self._roll(pid, "status")
        if roll >= PAID_SHARE + FAILED_SHARE:
            return []
        paid = roll < PAID_SHARE
        answer = Settlement(
            settlement_id=f"bank-{pid[:20]}", payment_id=pid,
            status=SettlementStatus.PAID if paid else SettlementStatus.FAILED,
            settled_on=instruction.occurred_on,
            bank_reference=f"NETS-{pid[:10].upper()}" if paid else None,
            reason=None if paid else "the payee's account is closed")
        answers = [answer]
        if self._roll(pid, "twice") < TWICE_SHARE:
            answers.append(answer)  # the finance system retried: one settlement
        if self._roll(pid, "conflict") < CONFLICT_SHARE:
            # A second, different answer to the same payment: already_settled.
            answers.append(answer.model_copy(update={"settlement_id": f"bank2-{pid[:19]}"}))
        return answers

    async def pass_once(self) -> int:
        """Read the journal from where the last pass stopped; answer what is new."""
        new, position = await self._read_new()
        answers = [a for i in new for a in self.answers_to(i)]
        if self._unknown_sent < UNKNOWN_PAYMENTS and new:
            pid = hashlib.sha256(f"unknown-{self.seed}-{self._unknown_sent}".encode()).hexdigest()[:32]
            answers.append(Settlement(settlement_id=f"bank-unknown-{self._unknown_sent}", payment_id=pid,
                                      status=SettlementStatus.PAID, settled_on=dt.date(2026, 1, 1),
                                      bank_reference="NETS-UNKNOWN"))
            self._unknown_sent += 1
        if answers:
            await send_retrying(self.bootstrap, self.settlements_topic,
                                [(a.payment_id.encode(), a.model_dump_json().encode()) for a in answers], self.say)
            self.sent.extend(answers)
        # Only now is the journal read up to here: a pass that failed reads it again.
        self._position = position
        self._answered.update(i.payment_id for i in new)
        return len(answers)

    async def _read_new(self) -> tuple[list[PaymentInstruction], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                    request_timeout_ms=10_000, **kafka_options("finance"))
        try:
            await consumer.start()
            partition = TopicPartition(self.payments_topic, 0)
            consumer.assign([partition])
            position = self._position
            consumer.seek(partition, position)
            end = (await consumer.end_offsets([partition]))[partition]
            new: dict[str, PaymentInstruction] = {}
            while position < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, []):
                    position = record.offset + 1
                    parsed = JOURNAL_RECORD.validate_json(record.value or b"")
                    if (isinstance(parsed, PaymentInstruction) and parsed.kind == PaymentKind.PAYMENT
                            and parsed.payment_id not in self._answered):
                        new.setdefault(parsed.payment_id, parsed)
            return list(new.values()), position
        finally:
            await consumer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # The broker away: the next pass reads from the same position.
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await self.pass_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FINANCE_EVERY_S)


def write_registry_for(load: Load, path: Path) -> Path:
    from cli.synthetic.population import write_registry
    write_registry(path, load.registry)
    return path
