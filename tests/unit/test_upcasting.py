"""The upcaster path: records are lifted one version at a time to the current schema."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.upcasting import UnknownSchemaVersion, upcast


def rename_stage_to_level(data: dict[str, Any]) -> dict[str, Any]:
    body = dict(data["body"])
    if "stage" in body:
        body["level"] = body.pop("stage")
    return {**data, "body": body}


def test_a_v1_record_is_lifted_through_each_upcaster_to_the_current_version() -> None:
    record = {"schema_version": 1, "body": {"type": "enrolled", "stage": "primary"}}
    lifted = upcast(record, current=3, upcasters={1: rename_stage_to_level, 2: lambda d: {**d, "note": "v3"}})
    assert lifted == {"schema_version": 3, "body": {"type": "enrolled", "level": "primary"}, "note": "v3"}


def test_a_current_record_is_left_alone() -> None:
    record = {"schema_version": 1, "body": {"type": "enrolled"}}
    assert upcast(record) == record


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_an_unknown_version_is_refused(version: object) -> None:
    with pytest.raises(UnknownSchemaVersion):
        upcast({"schema_version": version})


def test_a_missing_upcaster_is_refused() -> None:
    with pytest.raises(UnknownSchemaVersion, match="no upcaster from schema_version 1"):
        upcast({"schema_version": 1}, current=2, upcasters={})
