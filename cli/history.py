"""The history file `stafet allocate` reads: a birth date and registrations."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.domain.contracts.solidarity import Registration

HISTORY_FILE_BYTES_MAX = 10_000_000


class HistoryFileError(ValueError):
    pass


class _Registration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    institution: str
    start: dt.date
    end: dt.date | None = None


class History(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    birth_date: dt.date
    registrations: tuple[_Registration, ...]

    @property
    def registration_list(self) -> tuple[Registration, ...]:
        return tuple(Registration(r.institution, r.start, r.end) for r in self.registrations)


class LoadedHistory(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    birth_date: dt.date
    registrations: tuple[Registration, ...]


def load_history(path: Path) -> LoadedHistory:
    try:
        if path.stat().st_size > HISTORY_FILE_BYTES_MAX:
            raise HistoryFileError(f"{path}: larger than {HISTORY_FILE_BYTES_MAX} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise HistoryFileError(f"{path}: cannot read: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise HistoryFileError(f"{path}: not valid JSON: {error}") from None
    try:
        history = History.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise HistoryFileError(f"{path}: {field}: {first['msg']}{more}") from None
    for registration in history.registrations:
        if registration.end is not None and registration.end < registration.start:
            raise HistoryFileError(f"{path}: registration at {registration.institution} "
                                   f"ends {registration.end} before it starts {registration.start}")
    return LoadedHistory(birth_date=history.birth_date, registrations=history.registration_list)
