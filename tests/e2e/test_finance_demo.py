"""The README's finance flow, exactly as written, right after a demo run on the real servers.

The demo pipeline runs as `make demo` runs it (the same population and seed); then the
commands of README.md's "Right after `make demo`" block run in bash, in order, from a
directory whose `.stack/demo` is the demo's. Two lines are the fixtures' job here and are
left out: activating the virtualenv (its `bin` is on PATH) and `make up` (the test's
servers are up).
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from cli.demo import demo_pipeline
from shared.domain.finance.iso20022 import PAIN_001, validate
from shared.platform.settings import REPO_ROOT
from tests.servers import Servers

pytestmark = pytest.mark.e2e
SUBJECTS, SEED = 2000, 7  # `stafet demo`'s defaults (cli/main.py)
FIXTURES = (". .venv/bin/activate", "make up")


def readme_flow() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Right after `make demo`**"):]
    block = section[section.index("```sh\n") + 6:section.index("```\n", section.index("```sh\n") + 6)]
    return block.splitlines()


def test_the_readmes_finance_flow_works_right_after_the_demo(servers: Servers, namespace: str, database_url: str,
                                                             tmp_path: Path) -> None:
    import asyncio

    work = tmp_path / ".stack" / "demo"
    asyncio.run(demo_pipeline(servers.bootstrap_servers, database_url, namespace, work, subjects=SUBJECTS,
                              seed=SEED, show=False))
    env_file = (work / "finance.env").read_text()
    assert f"STAFET_TOPIC_NAMESPACE={namespace}" in env_file
    lines = readme_flow()
    kept = [line for line in lines if line.split("#")[0].strip() not in FIXTURES]
    assert len(lines) - len(kept) == len(FIXTURES)
    script = "set -euo pipefail\ntrap 'kill ${LEDGER:-} 2>/dev/null || true' EXIT\n" + "\n".join(kept) + "\n"
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("KAFKA_", "DATABASE_", "STAFET_TOPIC", "INSTITUTIONS_"))}
    environment["PATH"] = f"{Path(sys.executable).parent}:{environment.get('PATH', '')}"
    environment["STAFET_CREDENTIALS_DIR"] = str(servers.credentials_dir)
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{(work / 'ledger.log').read_text()[-3000:]}"
    out = done.stdout

    # The first run: valid for the bank, in Danske Bank's form, acknowledged by its pain.002.
    first = (work / "pay-1.xml").read_bytes()
    root = validate(first, PAIN_001)
    assert root.findtext(".//{*}DbtrAgt/{*}FinInstnId/{*}BIC") == "DABADKKK"
    exported = re.findall(r"exported (\d+) payment\(s\) in (\d+) transfer\(s\), ([0-9.]+) DKK", out)
    assert len(exported) == 3, out  # the first run, the run that pays the return again, the postings
    assert int(exported[0][0]) > int(exported[0][1]) > 0  # one transfer per payee: fewer than payments
    run_id = str(root.findtext(".//{*}GrpHdr/{*}MsgId"))
    assert f"run {run_id} is acknowledged" in out
    assert any((work / "advice").glob("kommune-000-youth-education-0-*.html"))
    # Every transfer booked, the gymnasium's returned (each of its payments), with its reason;
    # the next run pays exactly those payments again, in one transfer.
    answers = re.findall(r"published (\d+) settlement\(s\) \((\d+) paid, (\d+) returned, 0 failed\)", out)
    paid, returned_count = int(answers[0][1]), int(answers[0][2])
    assert paid == int(exported[0][0])
    assert returned_count > 0
    assert int(exported[1][0]) == returned_count
    assert int(exported[1][1]) == 1
    assert "the ledger applied all" in out
    assert "AC04" in out
    returned = [x for x in etree.fromstring(first).iterfind(".//{*}CdtTrfTxInf")
                if x.findtext("{*}Cdtr/{*}Nm", "").startswith("Gymnasium")
                and x.findtext("{*}CdtrAcct/{*}Id/{*}IBAN")]
    second = validate((work / "pay-2.xml").read_bytes(), PAIN_001)
    again = second.findall(".//{*}CdtTrfTxInf")
    assert len(again) == 1
    assert again[0].findtext("{*}PmtId/{*}EndToEndId") in {x.findtext("{*}PmtId/{*}EndToEndId") for x in returned}
    # The municipality's own daycare and school: balanced internal postings, for Danish Excel.
    postings = (work / "postings.csv").read_bytes()
    assert postings.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(postings.decode("utf-8-sig")), delimiter=";"))
    assert rows
    assert sum(int(r["debit_minor"]) for r in rows) == sum(int(r["credit_minor"]) for r in rows)
    assert {r["cost_centre"] for r in rows if r["credit_minor"] != "0"} <= {"510100", "310100"}
    # Booked by the accounting system: every posted payment is paid in the ledger.
    posted = {r["payment_id"] for r in rows}
    assert f"published {len(posted)} settlement(s) ({len(posted)} paid, 0 returned, 0 failed)" in out, out
    assert re.search(r"run STAFET-\w+ is acknowledged: posted as STAFET-", out)
