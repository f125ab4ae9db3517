"""`stafet publish FILE`: how an institution's system sends events (JSON Lines).

Everything is validated locally first: every bad line is reported with its number, and
nothing is published unless all lines are good or `--skip-invalid` is given. Records
are keyed by event id, and the event id is the idempotency key downstream, so
publishing the same file twice changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

from shared.cli.csv_events import CsvRowError, csv_lines
from shared.events import InstitutionEvent
from shared.pseudonym import InvalidCpr, birth_date_from_cpr, scrub
from shared.sealing import development_private_key, load_public_key, seal
from shared.settings import Settings
from shared.signing import RecordSigner
from shared.trust import record_signer

PUBLISH_WINDOW = 1000  # records in flight before waiting for the broker's acks
SEAL_CACHE_MAX = 100_000  # subjects whose sealed token is reused within one run


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str


def _numbered_records(path: Path) -> Iterator[tuple[int, bytes | CsvRowError]]:
    if path.suffix.lower() == ".csv":
        yield from csv_lines(path)
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def validate_lines(path: Path) -> tuple[list[tuple[int, bytes]], list[LineProblem]]:
    """Every record of a JSON Lines or CSV file, validated; problems carry line numbers."""
    good: list[tuple[int, bytes]] = []
    problems: list[LineProblem] = []
    for number, raw in _numbered_records(path):
        if isinstance(raw, CsvRowError):
            problems.append(LineProblem(number, scrub(str(raw))))
            continue
        problem = _problem(raw)
        if problem is None:
            good.append((number, raw.strip()))
        else:
            problems.append(LineProblem(number, problem))
    return good, problems


def _problem(raw: bytes) -> str | None:
    """What is wrong with one record, in one line (CPR-shaped numbers removed), or None."""
    try:
        event = InstitutionEvent.model_validate(json.loads(raw))
        if event.subject.cpr is not None:
            birth_date_from_cpr(event.subject.cpr)
    except json.JSONDecodeError as error:
        return f"not valid JSON: {error.msg}"
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return scrub(f"{field}: {first['msg']}")
    except InvalidCpr as error:
        return f"subject.cpr: {error}"
    return None


def publisher_public_key(settings: Settings) -> X25519PublicKey:
    if settings.sealing_public_key_file is not None:
        return load_public_key(settings.sealing_public_key_file)
    if settings.stafet_env == "production":
        raise ValueError("no sealing key: set SEALING_PUBLIC_KEY_FILE to ingest's public key")
    return development_private_key().public_key()


class Sealer:
    """Seals each subject's CPR number once per run (a bounded cache from number to
    token): the key exchange is the expensive part, and ingest caches by token too."""

    def __init__(self, recipient: X25519PublicKey, cache_max: int = SEAL_CACHE_MAX) -> None:
        self.recipient = recipient
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._cache_max = cache_max

    def token(self, cpr: str) -> str:
        token = self._tokens.get(cpr)
        if token is None:
            token = self._tokens[cpr] = seal(cpr, self.recipient)
            if len(self._tokens) > self._cache_max:
                self._tokens.popitem(last=False)
        return token

    def line(self, raw: bytes) -> bytes:
        """The record as it may travel: a clear `cpr` replaced by `cpr_sealed`."""
        return self.keyed(raw)[1]

    def keyed(self, raw: bytes) -> tuple[bytes, bytes]:
        """(key, record): keyed by the subject's token (or pseudonym) so that one
        subject's events share a partition and keep their order; else by event id."""
        key, value, _ = self.sealed(raw)
        return key, value

    def sealed(self, raw: bytes) -> tuple[bytes, bytes, str]:
        """(key, record, the institution it is reported by)."""
        event = json.loads(raw)
        subject = event.get("subject") or {}
        if subject.get("cpr") is not None:
            subject["cpr_sealed"] = self.token(subject.pop("cpr"))
        key = subject.get("cpr_sealed") or subject.get("pseudonym") or str(event.get("event_id", ""))
        reporter = str(event.get("reported_by", ""))
        return key.encode(), json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode(), reporter


class InstitutionSigning:
    """Who signs each event: the institution's key (`--signing-key` or SIGNING_KEY_FILE)
    for all of them; in development without one, the well-known development key of the
    institution each event names (the demo publishes for a whole municipality)."""

    def __init__(self, settings: Settings, key_file: Path | None = None) -> None:
        self._one = (record_signer(settings, "institution", key_file)
                     if key_file or settings.signing_key_file or settings.stafet_env == "production" else None)
        self._development: dict[str, RecordSigner] = {}

    def signer(self, reported_by: str) -> RecordSigner:
        if self._one is not None:
            return self._one
        found = self._development.get(reported_by)
        if found is None:
            found = self._development[reported_by] = RecordSigner.development(f"institution:{reported_by}")
        return found

    def batch_headers(self, topic: str, records: Sequence[tuple[str, bytes, bytes]]) -> list[list[tuple[str, bytes]]]:
        """Headers for each (reported_by, key, value), in order (see `signed_by_each`)."""
        return signed_by_each(topic, records, self.signer)


def signed_by_each(topic: str, records: Sequence[tuple[str, bytes, bytes]],
                   signer_of: Callable[[str], RecordSigner]) -> list[list[tuple[str, bytes]]]:
    """Headers for each (reported_by, key, value), in order: each signer's records signed
    as batches (one signature per tree, each record with its proof: shared/signing.py)."""
    groups: dict[str, tuple[RecordSigner, list[int]]] = {}
    for n, (reported_by, _, _) in enumerate(records):
        signer = signer_of(reported_by)
        groups.setdefault(signer.key_id, (signer, []))[1].append(n)
    headers: list[list[tuple[str, bytes]]] = [[] for _ in records]
    for signer, indexes in groups.values():
        signed = signer.batch_headers([(topic, records[n][1], records[n][2]) for n in indexes])
        for n, found in zip(indexes, signed, strict=True):
            headers[n] = found
    return headers


def seal_line(raw: bytes, recipient: X25519PublicKey) -> bytes:
    return Sealer(recipient).line(raw)


async def publish_records(bootstrap: str, topic: str, records: list[tuple[int, bytes]],
                          progress: object | None = None,
                          recipient: X25519PublicKey | None = None,
                          signing: InstitutionSigning | None = None) -> int:
    """Seal, sign and publish; ConfigurationError when a key is missing in production."""
    from shared.kafka import make_producer

    settings = Settings()
    sealer = Sealer(recipient or publisher_public_key(settings))
    signing = signing or InstitutionSigning(settings)
    producer = make_producer(bootstrap, client_id="stafet-publish", principal="institution")
    try:
        await producer.start()
        for first in range(0, len(records), PUBLISH_WINDOW):
            window = [sealer.sealed(raw) for _, raw in records[first:first + PUBLISH_WINDOW]]
            signed = signing.batch_headers(topic, [(reported_by, key, value) for key, value, reported_by in window])
            pending = [await producer.send(topic, value, key=key, headers=headers)
                       for (key, value, _), headers in zip(window, signed, strict=True)]
            await asyncio.gather(*pending)
            if progress is not None:
                progress(len(pending))  # type: ignore[operator]
    finally:
        await producer.stop()
    return len(records)
