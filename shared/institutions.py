"""The institution registry and the trust rules: who may report which fact.

An event from an institution that is not in the registry, or whose kind may not report
that type of fact, is dead-lettered with a reason; it never reaches the verifier.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.events import EventType, Identifier

# Which institution kinds may report each fact. Only the exam authority reports exam
# results, only the income register reports employment: an institution that is paid
# for an outcome is never the source of its evidence.
TRUSTED_REPORTERS: dict[EventType, frozenset[str]] = {
    EventType.ENROLLED: frozenset({"daycare", "primary_school", "youth_education",
                                   "employment_actor", "social_enterprise", "club"}),
    EventType.LEFT: frozenset({"daycare", "primary_school", "youth_education",
                               "employment_actor", "social_enterprise", "club"}),
    EventType.ABSENCE: frozenset({"daycare", "primary_school", "youth_education"}),
    EventType.EXAM_RESULT: frozenset({"exam_authority"}),
    EventType.EDUCATION_COMPLETED: frozenset({"exam_authority"}),
    EventType.EMPLOYMENT_STARTED: frozenset({"income_register"}),
    EventType.EMPLOYMENT_ENDED: frozenset({"income_register"}),
    EventType.TRANSFER: frozenset({"association"}),
    # Corrections are checked against the corrected event's reporter by the verifier;
    # here any registered institution may send one.
    EventType.RETRACTION: frozenset(),
    EventType.AMENDMENT: frozenset(),
}


class Institution(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: Identifier
    name: str
    kind: Identifier
    municipality: str = ""


class RegistryError(ValueError):
    pass


class InstitutionRegistry:
    def __init__(self, institutions: tuple[Institution, ...]) -> None:
        self._by_id = {i.id: i for i in institutions}

    @classmethod
    def from_file(cls, path: Path) -> InstitutionRegistry:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            rows = tuple(Institution.model_validate(row) for row in data["institutions"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValidationError) as error:
            raise RegistryError(f"{path}: not a valid institution registry: {error}") from None
        return cls(rows)

    def get(self, institution_id: str) -> Institution | None:
        return self._by_id.get(institution_id)

    def name_of(self, institution_id: str) -> str:
        found = self._by_id.get(institution_id)
        return found.name if found else institution_id

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> tuple[Institution, ...]:
        return tuple(self._by_id.values())


def may_report(kind: str, event_type: EventType) -> bool:
    allowed = TRUSTED_REPORTERS[event_type]
    return not allowed or kind in allowed
