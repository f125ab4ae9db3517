"""`stafet publish FILE`: how an institution's system sends events (JSON Lines).

Everything is validated locally first: every bad line is reported with its number, and
nothing is published unless all lines are good or `--skip-invalid` is given. Records
are keyed by event id, and the event id is the idempotency key downstream, so
publishing the same file twice changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import ValidationError

from cli.csv_events import CsvRowError, csv_lines
from shared.domain.events import InstitutionEvent
from shared.domain.pseudonym import InvalidCpr, birth_date_from_cpr, scrub
from shared.domain.sealing import Sealer
from shared.domain.signing import RecordSigner
from shared.platform.sealing_key import publisher_public_key
from shared.platform.settings import Settings
from shared.platform.trust import record_signer

PUBLISH_WINDOW = 1000  # records in flight before waiting for the broker's acks


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
    as batches (one signature per tree, each record with its proof: shared/domain/signing.py)."""
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
    from shared.platform.kafka import make_producer

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
