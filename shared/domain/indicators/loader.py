"""Indicator files (YAML) to `IndicatorSet`, with one readable line per problem."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from shared.domain.indicators.experiment import Experiment
from shared.domain.indicators.model import IndicatorSet
from shared.domain.yaml_model import parse_yaml_model

MAX_FILE_BYTES = 1_000_000
Model = TypeVar("Model", bound=BaseModel)


class IndicatorFileError(ValueError):
    """An indicator file that cannot be used: the message names the file and the field."""


def parse_indicators(text: str, origin: str) -> IndicatorSet:
    return _validated(text, origin, "indicators", IndicatorSet)


def parse_experiment(text: str, origin: str) -> Experiment:
    return _validated(text, origin, "id, units and assignment", Experiment)


def _validated(text: str, origin: str, expected: str, model: type[Model]) -> Model:
    return parse_yaml_model(text, origin, model, expected, IndicatorFileError)


def load_indicators(path: Path) -> IndicatorSet:
    return parse_indicators(_read(path), str(path))


def load_experiment(path: Path) -> Experiment:
    return parse_experiment(_read(path), str(path))


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IndicatorFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise IndicatorFileError(f"{path}: cannot read: {error}") from None
