"""How a default file reads in `--help`: relative to the checkout (`examples/...`), not
as the absolute path of wherever the source happens to live."""

from __future__ import annotations

from pathlib import Path

from shared.platform.settings import REPO_ROOT


def shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
