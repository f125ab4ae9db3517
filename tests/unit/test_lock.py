"""uv.lock, which the image installs from (Containerfile: `uv export --frozen`, hashes
required), must be the lock of pyproject.toml as it stands: a dependency changed in
pyproject.toml without `uv lock` would build an image from the old pins."""

from __future__ import annotations

import re
import tomllib

from shared.platform.settings import REPO_ROOT


def requirement(text: str) -> tuple[str, str]:
    """(normalised name, specifier) of a pinned requirement such as `faststream[kafka]==0.7.8`."""
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*(==\S+)", text.strip())
    assert match, f"not pinned exactly: {text}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), match.group(2)


def test_the_lock_file_is_the_lock_of_the_pinned_dependencies_in_pyproject() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    locked = {p["name"]: p for p in lock["package"]}
    wanted = dict(requirement(r) for r in project["dependencies"])
    stafet = locked["stafet"]["metadata"]["requires-dist"]
    recorded = {r["name"]: r["specifier"] for r in stafet if "marker" not in r}
    assert recorded == wanted, "pyproject.toml's dependencies changed since `uv lock`: run it and commit uv.lock"
    for name, specifier in wanted.items():
        assert locked[name]["version"] == specifier.removeprefix("=="), name
    # Every package the image installs is locked to one version, with its files' hashes.
    for package in lock["package"]:
        if package["name"] == "stafet":
            continue
        files = package.get("wheels", []) + ([package["sdist"]] if "sdist" in package else [])
        assert files, package["name"]
        assert all(f.get("hash", "").startswith("sha256:") for f in files), package["name"]
