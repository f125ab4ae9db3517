"""Planted bugs: each one a plausible mistake in a money guarantee, applied alone to a
temporary copy of the repository; the tests named for it must then fail.

`make planted-bugs` (and `make mutation`, before mutmut) runs them. A bug that no test
catches is a gap in the suite: the script exits 1 and names it. The unmodified copy must
pass the same tests first, so a failure always means "caught", never "already broken".

Run: .venv/bin/python -m tests.mutation.planted_bugs [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 900  # one pytest run; the e2e store tests start their own servers


@dataclass(frozen=True)
class Bug:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


UNIT_MONEY = ("tests/unit/test_money_properties.py", "tests/unit/test_solidarity.py")
BUGS = (
    Bug("tie-break reversed", "shared/domain/contracts/solidarity.py",
        "by_remainder = sorted(exact, key=lambda key: (-(exact[key] - floors[key]), tie_rank(key)))",
        "by_remainder = sorted(sorted(exact, key=tie_rank, reverse=True), key=lambda key: -(exact[key] - floors[key]))",
        UNIT_MONEY),
    Bug("leftover units misplaced (to the smallest remainders)", "shared/domain/contracts/solidarity.py",
        "for key in by_remainder[:leftover]:",
        "for key in by_remainder[len(by_remainder) - leftover:]:",
        UNIT_MONEY),
    Bug("dedup forwards duplicates", "services/ingest/dedup.py",
        "            duplicates += 1\n",
        "            duplicates += 1\n            fresh.append(item)\n",
        ("tests/unit/test_dedup.py",)),
    Bug("conflicting duplicates dropped", "services/ingest/dedup.py",
        "            conflicting.append(item)\n",
        "            pass\n",
        ("tests/unit/test_dedup.py",)),
    Bug("balance check removed", "shared/domain/ledger/postings.py",
        "        raise UnbalancedEntry(entry.entry_id)\n",
        "        pass\n",
        ("tests/unit/test_ledger_core.py",)),
    Bug("chain hash ignores its predecessor", "shared/domain/ledger/postings.py",
        'hashlib.sha256(f"{previous_hash}{content_hash}".encode())',
        'hashlib.sha256(f"{content_hash}".encode())',
        ("tests/unit/test_ledger_core.py",)),
    Bug("content hash leaves out the subject", "shared/domain/ledger/postings.py",
        'data = self.instruction.model_dump(mode="json")',
        'data = self.instruction.model_dump(mode="json", exclude={"subject"})',
        ("tests/unit/test_ledger_core.py",)),
    Bug("content hash leaves out the date", "shared/domain/ledger/postings.py",
        'data = self.instruction.model_dump(mode="json")',
        'data = self.instruction.model_dump(mode="json", exclude={"occurred_on"})',
        ("tests/unit/test_ledger_core.py",)),
    Bug("outbox deleted before the broker acknowledged", "services/verifier/relay.py",
        "                await asyncio.gather(*acknowledgements)\n",
        "",
        ("tests/e2e/test_verifier_store.py",)),
    Bug("payment id without the payee", "shared/domain/contracts/payments.py",
        "return _digest(outcome_key(decision), payee, role, str(amount_minor), str(generation))",
        "return _digest(outcome_key(decision), role, str(amount_minor), str(generation))",
        ("tests/unit/test_payments.py",)),
)
# For the relay bug the gather is moved after the delete, not just removed: the
# acknowledgements are still awaited, only too late.
_RELAY_DELETE = "                await store.mark_published("
_RELAY_LATE_GATHER = "            await asyncio.gather(*acknowledgements)\n            total += len(pending)"


def plant(copy: Path, bug: Bug) -> None:
    target = copy / bug.path
    text = target.read_text()
    if bug.old not in text:
        raise SystemExit(f"planted bug {bug.name!r}: its code is no longer in {bug.path}; update the script")
    text = text.replace(bug.old, bug.new, 1)
    if bug.path == "services/verifier/relay.py":
        text = text.replace("            total += len(pending)", _RELAY_LATE_GATHER, 1)
        assert _RELAY_DELETE in text
    target.write_text(text)


def copy_repo(destination: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.splitlines()
    for name in files:
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    # The copy's own packages come first on the path, ahead of the editable install.
    env = {**os.environ, "PYTHONPATH": str(copy), "HYPOTHESIS_STORAGE_DIRECTORY": str(copy / ".hypothesis")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return done.returncode, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run the bugs whose name contains this")
    chosen = [b for b in BUGS if not parser.parse_args().only or any(o in b.name for o in parser.parse_args().only)]
    started = time.monotonic()
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="stafet-planted-") as directory:
        clean = Path(directory) / "clean"
        copy_repo(clean)
        check = subprocess.run([sys.executable, "-c", "import shared; print(shared.__file__)"], cwd=clean,
                               env={**os.environ, "PYTHONPATH": str(clean)}, capture_output=True, text=True)
        assert check.stdout.startswith(str(clean)), f"the copy is not the code under test: {check.stdout}"
        every_test = tuple(sorted({t for b in chosen for t in b.tests}))
        code, summary = run_tests(clean, every_test)
        if code != 0:
            print(f"the unmodified copy fails its tests ({summary}); nothing can be concluded")
            return 2
        print(f"baseline: {summary}")
        for n, bug in enumerate(chosen):
            copy = Path(directory) / f"bug-{n}"
            shutil.copytree(clean, copy)
            plant(copy, bug)
            code, summary = run_tests(copy, bug.tests)
            # pytest: 1 = tests failed. Anything else (collection or usage errors) is not "caught".
            verdict = "caught" if code == 1 else "MISSED"
            if code != 1:
                missed.append(bug.name)
            print(f"{verdict:7} {bug.name:55} {summary}")
            shutil.rmtree(copy)
    print(f"{len(chosen) - len(missed)} of {len(chosen)} planted bugs caught in {time.monotonic() - started:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
