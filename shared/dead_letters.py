"""The dead-letter record every service writes for input it rejects.

One shape for all: a reason code a program can act on, the field at fault, a message a
person can act on, and the original record as text (CPR-shaped numbers removed,
truncated), with where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from shared.pseudonym import scrub

ORIGINAL_CHARS_MAX = 4096  # how much of a bad record the dead letter keeps


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
        text = raw[:ORIGINAL_CHARS_MAX * 4].decode("utf-8", errors="replace")[:ORIGINAL_CHARS_MAX]
        return cls(reason, field, scrub(message), scrub(text), record_id)

    def to_json(self, *, service: str, topic: str, partition: int, offset: int) -> bytes:
        return DeadLetterRecord(
            reason=self.reason, field=self.field, message=self.message, record_id=self.record_id,
            original=self.original, service=service,
            source=DeadLetterSource(topic=topic, partition=partition, offset=offset),
        ).model_dump_json().encode()
