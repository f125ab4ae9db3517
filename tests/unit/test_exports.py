"""The analysts' export tables: documented columns that match the code."""

from __future__ import annotations

from cli.reporting.exports import TABLES, columns_markdown
from shared.platform.settings import REPO_ROOT


def test_docs_exports_md_is_generated_from_the_table_declarations() -> None:
    kept = (REPO_ROOT / "docs" / "exports.md").read_text()
    assert kept.strip() == columns_markdown().strip(), "run `stafet export --columns > docs/exports.md`"


def test_every_declared_column_is_selected_by_its_query_or_named_from_the_registry() -> None:
    for spec in TABLES.values():
        from_registry = dict(spec.names)
        for column in spec.columns:
            if column.name in from_registry:
                assert from_registry[column.name] in spec.query, column.name  # its id column is selected
            else:
                assert column.name in spec.query, column.name
