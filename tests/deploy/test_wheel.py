"""The installed package, as the image installs it: a wheel built from the checkout and
installed in a clean virtualenv outside it writes and validates a payout, and finds every
file the code reads (XSDs, bank profiles, chart of accounts, SQL migrations)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.platform.db import migration_files
from shared.platform.settings import REPO_ROOT

UV = Path(sys.executable).parent / "uv"
TIMEOUT_S = 600

SCRIPT = """
import datetime as dt, hashlib, pathlib, sys
import shared
from lxml import etree
from shared.domain.finance.iso20022 import PAIN_001, XSD_DIR, initiator_for, pain001, parse_camt054, validate
from shared.domain.finance.payouts import Payable, PayoutFormat, plan_payout
from shared.domain.finance.postings import load_chart
from shared.domain.finance.profiles import profile_named
from shared.domain.finance.simulated_bank import camt054, transfers_in
from shared.domain.institutions import InstitutionRegistry
from shared.platform.db import migration_files

here = pathlib.Path(shared.__file__).resolve()
assert "site-packages" in str(here), here
registry = InstitutionRegistry.from_file(pathlib.Path(sys.argv[1]))
profile = profile_named("nordea")
payables = [Payable(f"{n:032x}", "mobility-bonus", "o", "payer", "school", 1000 * n, "DKK", dt.date(2024, 2, n))
            for n in (1, 2)]
plan = plan_payout(payables, registry, {}, PayoutFormat.PAIN_001, profile=profile)
assert len(plan.lines) == 2, plan
document = pain001(plan.lines, plan.run_id, dt.datetime(2024, 3, 1, tzinfo=dt.UTC), dt.date(2024, 3, 4),
                   initiator_for(profile, "Payer", "16931918", "AGR-1"), profile)
schema = etree.XMLSchema(etree.parse(str(XSD_DIR / "pain.001.001.03.xsd")))
assert schema.validate(etree.fromstring(document)), schema.error_log
answers, _ = parse_camt054(camt054(transfers_in(document), booked_on=dt.date(2024, 3, 4)))
assert len(answers) == 1
load_chart()
pathlib.Path(sys.argv[2]).write_bytes(document)
print(len(migration_files()), hashlib.sha256(document).hexdigest())
"""

REGISTRY = """institutions:
  - {id: payer, name: Payer Kommune, kind: municipality, cvr: "16931918", iban: DK4099995701127652,
     payment_method: bank_transfer}
  - {id: school, name: Skolen, kind: primary_school, cvr: "19126188", iban: DK4199991399787085,
     payment_method: bank_transfer}
"""


def run(*command: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_an_installed_wheel_writes_and_validates_a_payout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run(UV, "build", "--wheel", "--out-dir", dist, REPO_ROOT, cwd=tmp_path)
    (wheel,) = dist.glob("stafet-*.whl")
    venv = tmp_path / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    run(UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python", wheel, cwd=tmp_path)
    (tmp_path / "institutions.yaml").write_text(REGISTRY)
    out = run(venv / "bin" / "python", "-c", SCRIPT, tmp_path / "institutions.yaml", tmp_path / "pay.xml",
              cwd=tmp_path)
    migrations, digest = out.split()
    assert int(migrations) == len(migration_files())  # every SQL file shipped
    assert len(digest) == 64
    assert (tmp_path / "pay.xml").read_bytes().startswith(b"<?xml")
    # The console script, as the image runs it.
    assert "simulate-bank" in run(venv / "bin" / "stafet", "finance", "--help", cwd=tmp_path)
