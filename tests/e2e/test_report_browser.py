"""The HTML report in a real browser: headless Chromium renders its charts."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from shared.contracts.loader import load_contract
from shared.institutions import InstitutionRegistry
from shared.reporting.business_case import load_assumptions
from shared.reporting.html import render
from shared.reporting.simulate import simulate, transitions_of
from shared.settings import REPO_ROOT
from shared.synthetic import generate, to_json_line

pytestmark = pytest.mark.e2e
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=8000", "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed for this test: `make test` installs Debian's chromium package"
    return found


def png_distinct_bytes(path: Path) -> int:
    """How varied the pixels are: a blank page decompresses to one or two byte values."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if kind == b"IDAT":
            chunks.append(data[offset + 8:offset + 8 + length])
        offset += 12 + length
    return len(set(zlib.decompress(b"".join(chunks))))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    institutions, events = generate(400, seed=5)
    registry = InstitutionRegistry(institutions)
    transitions, _ = transitions_of((to_json_line(e) for e in events), registry)
    variants = [simulate(name, [load_contract(REPO_ROOT / "examples" / "contracts" / name)], transitions, registry)
                for name in ("mobility-bonus.yaml", "mobility-bonus-early-years.yaml")]
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render(variants, load_assumptions(REPO_ROOT / "examples" / "business-case.yaml"),
                           title="Browser test"), encoding="utf-8")
    return path


def run_chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *arguments],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_the_report_renders_its_charts_without_console_errors(report: Path, tmp_path: Path) -> None:
    dom = run_chromium(tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="main-svg"') >= 6, "Plotly did not draw the charts"
    assert "sankey" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not [line for line in console if "error" in line.lower() or "Uncaught" in line], console


def test_a_screenshot_of_the_report_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = run_chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 20_000
    assert png_distinct_bytes(shot) > 50
