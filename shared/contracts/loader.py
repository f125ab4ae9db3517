"""Contract files (YAML) into validated `Contract` models, with precise errors.

A bad file gets one line per problem naming the file, the line, the field path and what
is wrong: an operator fixes a contract from the message, never from a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.contracts.model import Contract

CONTRACT_FILE_BYTES_MAX = 1_000_000


class ContractFileError(ValueError):
    """The file is not a valid contract; str() is a human-readable, one-line-per-problem text."""


def _line_index(node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _line_index(item, (*path, index), lines)


def _nearest_line(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    # pydantic adds union tags ("fixed", "solidarity") to locations; drop what YAML lacks.
    path = tuple(p for p in loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def parse_contract(text: str, source: str = "<contract>") -> Contract:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ContractFileError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict) or node is None:
        raise ContractFileError(f"{source}: a contract file must be a YAML mapping")
    lines: dict[tuple[str | int, ...], int] = {}
    _line_index(node, (), lines)
    try:
        return Contract.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p in
                        {"fixed", "rate", "direct", "split", "solidarity"}))
            line = _nearest_line(loc, lines)
            field = ".".join(str(p) for p in loc) or "(top level)"
            where = f":{line}" if line else ""
            problems.append(f"{source}{where}: {field}: {item['msg']}")
        raise ContractFileError("\n".join(problems)) from None


def load_contract(path: Path) -> Contract:
    try:
        if path.stat().st_size > CONTRACT_FILE_BYTES_MAX:
            raise ContractFileError(f"{path}: larger than {CONTRACT_FILE_BYTES_MAX} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ContractFileError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ContractFileError(f"{path}: not UTF-8 text") from None
    return parse_contract(text, str(path))
