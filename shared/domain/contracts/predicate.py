"""A condition on a field of an event's body, shared by contracts (triggers) and
indicators (what is counted).

Its own module so that the indicator definitions (`shared/domain/indicators/model.py`) and the
contract model, which embeds indicators in its indicator outcomes, can both use it
without importing each other in a circle.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Predicate(Frozen):
    """A condition on a field of the trigger event's body (dotted path, e.g. grades.danish)."""

    field: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_.]*$")]
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in"]
    value: str | int | Decimal | bool | tuple[str, ...]
