"""Contract files (YAML) into validated `Contract` models, with precise errors.

A bad file gets one line per problem naming the file, the line, the field path and what
is wrong: an operator fixes a contract from the message, never from a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.domain.contracts.model import Contract

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


# Limits on what a contract file may make the parser do (a contract is a page of YAML):
# nesting depth (a 50,000-deep list overflows Python's stack), nodes after alias
# expansion (a 360-byte alias bomb expands to billions), and size.
YAML_DEPTH_MAX = 32
YAML_NODES_MAX = 20_000


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting deeper than YAML_DEPTH_MAX while composing
    (before recursion can run away)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:  # type: ignore[override]
        self._depth += 1
        try:
            if self._depth > YAML_DEPTH_MAX:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _LimitError(mark.line + 1, f"nested deeper than {YAML_DEPTH_MAX} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _timestamp(loader: _BoundedLoader, node: yaml.ScalarNode) -> object:
    """A date the calendar has; 2024-02-30 is a YAML error with its line, not a ValueError."""
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError as error:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a date ({error})", node.start_mark) from None


_BoundedLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _LimitError(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document has once every alias is expanded (memoised per node, so the
    count itself is linear in the file; depth is already bounded)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    count = 1
    if isinstance(node, yaml.MappingNode):
        count += sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        count += sum(_expanded_nodes(item, memo) for item in node.value)
    count = min(count, YAML_NODES_MAX + 1)
    memo[id(node)] = count
    return count


def _duplicate_keys(node: yaml.Node, path: tuple[str | int, ...], found: list[tuple[int, str, str]],
                    visited: set[int]) -> None:
    if id(node) in visited:
        return
    visited.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                found.append((key_node.start_mark.line + 1, ".".join(map(str, (*path, key))),
                               f"duplicate key {key!r} (a contract must say each thing once)"))
            seen.add(key)
            _duplicate_keys(value_node, (*path, key), found, visited)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, (*path, index), found, visited)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The document's node graph and its data, within the limits; ContractFileError else."""
    if len(text) > CONTRACT_FILE_BYTES_MAX:
        raise ContractFileError(f"{source}: (document): larger than {CONTRACT_FILE_BYTES_MAX} bytes")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if _expanded_nodes(node, {}) > YAML_NODES_MAX:
            raise ContractFileError(f"{source}:{node.start_mark.line + 1}: (document): aliases expand "
                                    f"to more than {YAML_NODES_MAX} nodes")
        duplicates: list[tuple[int, str, str]] = []
        _duplicate_keys(node, (), duplicates, set())
        if duplicates:
            raise ContractFileError("\n".join(f"{source}:{line}: {field}: {problem}"
                                              for line, field, problem in duplicates))
        return node, loader.construct_document(node)
    except ContractFileError:
        raise
    except _LimitError as error:
        raise ContractFileError(f"{source}:{error.line}: (document): {error.problem}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ContractFileError(f"{source}{where}: (document): not valid YAML: {problem}") from None
    except ValueError as error:
        # A scalar the safe constructors cannot build, e.g. the date 2024-02-30.
        raise ContractFileError(f"{source}: (document): {error}") from None
    finally:
        loader.dispose()


# pydantic adds the chosen member's tag to an error's location inside a discriminated
# union ("price.fixed.amount_minor"); YAML has no such level. A tag is dropped only right
# after the union's field, so a real field named like a tag (an outcome's `area`) stays.
UNION_TAGS = {
    "price": {"fixed", "rate"},
    "distribution": {"direct", "split", "solidarity", "area"},
    "numerator": {"has_fact", "status_on_day", "everyone"},
    "denominator": {"has_fact", "status_on_day", "everyone"},
}


def _without_union_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        before = loc[index - 1] if index else None
        if isinstance(part, str) and isinstance(before, str) and part in UNION_TAGS.get(before, ()):
            continue
        kept.append(part)
    return tuple(kept)


def parse_contract(text: str, source: str = "<contract>") -> Contract:
    node, data = _compose(text, source)
    if not isinstance(data, dict) or node is None:
        raise ContractFileError(f"{source}: (top level): a contract file must be a YAML mapping")
    lines: dict[tuple[str | int, ...], int] = {}
    _line_index(node, (), lines)
    try:
        return Contract.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            loc = _without_union_tags(tuple(item["loc"]))
            message = item["msg"].removeprefix("Value error, ")
            # Cross-field checks name their field themselves ("@effective_from: ..."):
            # report them at that field's line, not at the top of the document.
            named = re.match(r"^@([a-z0-9_.]+): (.*)$", message, re.DOTALL)
            if named:
                loc = (*loc, *(int(p) if p.isdigit() else p for p in named.group(1).split(".")))
                message = named.group(2)
            line = _nearest_line(loc, lines)
            field = ".".join(str(p) for p in loc) or "(top level)"
            where = f":{line}" if line else ""
            problems.append(f"{source}{where}: {field}: {message}")
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


def field_lines(text: str, source: str = "<contract>") -> dict[tuple[str | int, ...], int]:
    """Each field's line in a contract file's text (for checks made after loading)."""
    node, _ = _compose(text, source)
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)
    return lines


def line_of_field(lines: dict[tuple[str | int, ...], int], field: str) -> int | None:
    """The line of a dotted field (`outcomes.0.deadline`), or of its nearest parent."""
    return _nearest_line(tuple(int(p) if p.isdigit() else p for p in field.split(".")), lines)
