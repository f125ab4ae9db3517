"""Schema evolution for institution events: upcasters, oldest version first.

A record states its `schema_version`. Before validation, ingest lifts it, one version
at a time, to the current version with the registered upcasters (pure functions on the
decoded JSON), so institutions can move to a new schema on their own schedule and the
rest of the system only ever sees the current one. Version 1 is current and nothing
needs lifting yet; the first v2 change adds `UPCASTERS[1]` and bumps
`CURRENT_SCHEMA_VERSION` (and the model's `schema_version`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CURRENT_SCHEMA_VERSION = 1
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# from version n to n + 1
UPCASTERS: dict[int, Upcaster] = {}


class UnknownSchemaVersion(ValueError):
    pass


def upcast(data: dict[str, Any], *, current: int = CURRENT_SCHEMA_VERSION,
           upcasters: dict[int, Upcaster] | None = None) -> dict[str, Any]:
    """The record lifted to `current`; a missing version means 1 (the first schema)."""
    chain = UPCASTERS if upcasters is None else upcasters
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version < 1 or version > current:
        raise UnknownSchemaVersion(f"schema_version {version!r} is not one of 1..{current}")
    while version < current:
        step = chain.get(version)
        if step is None:
            raise UnknownSchemaVersion(f"no upcaster from schema_version {version} to {version + 1}")
        data = {**step(data), "schema_version": version + 1}
        version += 1
    return data
