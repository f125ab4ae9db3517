"""YAML files that configure one model (a programme, a price-of-exclusion model, an
indicator or experiment): parsed safely and validated, every problem one line naming the
file and the field, raised as the caller's own error type so its command can say `error:`."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def parse_yaml_model(text: str, origin: str, model: type[Model], expected: str,
                     error: type[Exception]) -> Model:
    """`text` as `model`; `expected` names the top-level keys for a file that is not a mapping."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as problem:
        raise error(f"{origin}: not YAML: {str(problem).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise error(f"{origin}: expected a mapping with {expected}")
    try:
        return model.model_validate(data)
    except ValidationError as problem:
        first = problem.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise error(f"{origin}: {where}: {first['msg'].removeprefix('Value error, ')}") from None


def load_yaml_model(path: Path, model: type[Model], expected: str, error: type[Exception], *,
                    bytes_max: int | None = None) -> Model:
    """The file at `path` as `model`; larger than `bytes_max` (when given) is refused unread."""
    try:
        if bytes_max is not None and path.stat().st_size > bytes_max:
            raise error(f"{path}: larger than {bytes_max} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{path}: cannot read: {problem}") from None
    return parse_yaml_model(text, str(path), model, expected, error)
