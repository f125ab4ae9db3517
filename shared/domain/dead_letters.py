"""The dead-letter record every service writes for input it rejects.

One shape for all: a reason code a program can act on, the field at fault, a message a
person can act on, and the original record as text (CPR numbers removed in every
spelling, JSON escapes included: `shared/domain/cpr_text.py`; truncated), with where it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from shared.domain.cpr_text import contains_cpr, scrub

ORIGINAL_CHARS_MAX = 4096  # how much of a bad record the dead letter keeps
# Redaction looks at more than is kept, so that a number is removed whole before the
# cut; a run of digits at the cut is dropped, as it may be the start of a number.
_SCRUBBED_CHARS_MAX = ORIGINAL_CHARS_MAX * 4
_TRAILING_DIGITS = re.compile(r"[0-9][-\s./_0-9]*$")


class DeadLetterSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    topic: str
    partition: int
    offset: int


class DeadLetterRecord(BaseModel):
    """A rejected record on the dead-letters topic (schema v1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    reason: str
    field: str
    message: str
    record_id: str | None
    original: str
    service: str
    source: DeadLetterSource


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    field: str
    message: str
    original: str
    record_id: str | None = None  # the event id / settlement id, when it could be read

    @classmethod
    def of(cls, reason: str, field: str, message: str, raw: bytes,
           record_id: str | None = None) -> DeadLetter:
        text = scrub(raw[:_SCRUBBED_CHARS_MAX].decode("utf-8", errors="replace"))
        if len(text) > ORIGINAL_CHARS_MAX:
            text = _TRAILING_DIGITS.sub("", text[:ORIGINAL_CHARS_MAX])
        # A record id is matched on by whoever handles the dead letter, so it is redacted
        # only where it holds something that can be a CPR number (a possible date), not
        # wherever a hex id happens to have ten digits in a row.
        if record_id is not None and contains_cpr(record_id):
            record_id = scrub(record_id)
        return cls(reason, scrub(field), scrub(message), text, record_id)

    def to_json(self, *, service: str, topic: str, partition: int, offset: int) -> bytes:
        # Redacted again here, whatever built this letter (`of` or the constructor): the
        # only way onto the topic is through this (shared/platform/dead_letters.py).
        clean = DeadLetter.of(self.reason, self.field, self.message, self.original.encode(), self.record_id)
        return DeadLetterRecord(
            reason=scrub(clean.reason), field=clean.field, message=clean.message, record_id=clean.record_id,
            original=clean.original, service=service,
            source=DeadLetterSource(topic=scrub(topic), partition=partition, offset=offset),
        ).model_dump_json().encode()
