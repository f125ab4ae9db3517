"""Every `stafet ...` command in the README and the docs is checked against the command
line, so the docs cannot drift again (issue 30; doctest-style):

- every mention (a fenced block's line, or inline code) names commands that exist, with
  options those commands have: `stafet db docs`, where the command is `stafet docs`, fails;
- every concrete command in a fenced block (no placeholders such as FILE or [--opt]) is
  run, block after block in the order the page gives them, in a scratch folder that sees
  the repository's examples/, and must exit 0; unless its command is in SKIPPED below,
  which says why (they need the servers; the end-to-end test named runs them there).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from cli.main import app
from shared.platform.settings import REPO_ROOT

STAFET = str(Path(sys.executable).parent / "stafet")
PAGES = sorted({REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md"), *(REPO_ROOT / "services").glob("*/README.md"),
                *(REPO_ROOT / "examples").glob("**/README.md"), *(REPO_ROOT / "bench").glob("**/*.md"),
                *(REPO_ROOT / "deploy").glob("**/*.md")})
# Commands that need Kafka and PostgreSQL (or start them): not run here, each with the
# reason and where it is run against real servers.
SKIPPED: dict[str, str] = {
    "access user": "creates a Kafka user as the super user: tests/e2e/test_security.py",
    "audit": "replays the topics into a database of its own and reads the ledger: tests/e2e/test_attacks.py",
    "clock": "publishes to Kafka: tests/e2e/test_verifier.py",
    "contract apply": "publishes to Kafka: tests/e2e/test_versions.py",
    "db migrate": "migrates PostgreSQL: tests/e2e/conftest.py",
    "demo": "starts the stack: tests/e2e/test_demo.py",
    "dev": "starts and stops the stack itself: make up / make down",
    "export": "reads the live databases: tests/e2e/test_indicators_live.py, tests/e2e/test_ledger.py",
    "finance": "reads and writes the ledger's database: tests/e2e/test_finance.py",
    "frontdoor user": "reads a password file the operator writes: "
                      "tests/unit/test_portal_accounts.py::test_the_entry_stafet_frontdoor_user_prints_logs_that_user_in",
    "indicators baselines": "30,000 subjects, half a minute: the same computation is "
                            "tests/unit/test_indicators.py::test_the_tuned_synthetic_municipality_matches_the_"
                            "baselines_within_the_stated_tolerance",
    "indicators measure": "reads the verifier's event store: tests/e2e/test_indicators_live.py",
    "invest": "publishes to Kafka: tests/e2e/test_investment.py",
    "keys revoke": "signs with a root key that TRUST_ROOT_KEYS (set by the shell line before) must name: "
                   "tests/deploy/test_chart_trust.py runs it, then loads what it wrote",
    "keys sign-list": "signs the operator's own keys.yaml with a root key that TRUST_ROOT_KEYS must name: "
                      "tests/deploy/test_chart_trust.py runs it, then loads what it wrote",
    "ledger": "reads the ledger's database: tests/e2e/test_ledger.py, tests/e2e/test_investment.py",
    "publish": "publishes to Kafka: tests/e2e/test_pipeline.py",
    "report": "reads the live ledger: tests/e2e/test_report_browser.py",
    "serve": "runs a service until stopped: tests/e2e (every service)",
    "settle": "publishes to Kafka: tests/e2e/test_ledger.py",
    "verifier rebuild": "rebuilds the verifier's store: tests/e2e/test_verifier.py",
}
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_:]*(\.\.\.)?$|^[A-Z]\.yaml$")


@dataclass(frozen=True)
class Mention:
    page: Path
    line: int
    text: str  # from `stafet` on, continuation lines joined, the comment dropped
    fenced: bool

    def where(self) -> str:
        return f"{self.page.relative_to(REPO_ROOT)}:{self.line}"


def mentions(page: Path) -> list[Mention]:
    found: list[Mention] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    fenced = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced and re.match(r"^\s*(\$ )?stafet ", line):
            start = index
            command = line.strip().removeprefix("$ ")
            while command.endswith("\\") and index + 1 < len(lines):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            found.append(Mention(page, start + 1, command.split("  #")[0].split(" # ")[0].strip(), True))
        elif not fenced:
            found += [Mention(page, index + 1, text.strip(), False) for text in re.findall(r"`(stafet [^`]+)`", line)]
        index += 1
    return found


MENTIONS = [m for page in PAGES for m in mentions(page)]
ROOT = typer.main.get_command(app)


def resolve(words: list[str]) -> tuple[list[str], object]:
    """The command path the words reach (subcommands, as far as they go) and the command."""
    command: object = ROOT
    path: list[str] = []
    for word in words:
        commands = getattr(command, "commands", None)
        if not commands or word.startswith("-"):
            break
        if word not in commands:
            raise AssertionError(f"`stafet {' '.join([*path, word])}`: no such command "
                                 f"(`stafet {' '.join(path)}` has: {', '.join(sorted(commands))})")
        command = commands[word]
        path.append(word)
    return path, command


def options_of(command: object) -> set[str]:
    names: set[str] = {"--help"}
    for param in getattr(command, "params", []):
        names.update(o for o in getattr(param, "opts", []) if o.startswith("--"))
        names.update(o for o in getattr(param, "secondary_opts", []) if o.startswith("--"))
    return names


def variants(text: str) -> list[list[str]]:
    """The commands a mention names: `stafet ledger balances | verify` is two, and so is
    `stafet experiment assign|trial` or `stafet indicators baselines / measure`."""
    text = re.sub(r"\s+/\s+", "/", text.removeprefix("stafet ").strip())
    segments = [s.split() for s in re.split(r"\s+\|\s+", text)]
    first = segments[0]
    # The words before the first option or placeholder are the command path.
    stem = []
    for word in first:
        if word.startswith(("-", "[", "<")) or PLACEHOLDER.match(word):
            break
        stem.append(word)
    head, rest = stem[:-1], first[len(stem) - 1:] if stem else first
    result = []
    for alternative in (stem[-1].replace("|", "/").split("/") if stem else [""]):
        result.append([*head, *([alternative] if alternative else []), *rest[1:]])
    for segment in segments[1:]:  # the later segments replace the last word of the path
        result.append([*head, *segment])
    return result


@pytest.mark.parametrize("mention", MENTIONS, ids=lambda m: f"{m.where()} {m.text[:60]}")
def test_every_documented_command_exists_with_the_options_it_is_given(mention: Mention) -> None:
    for words in variants(mention.text):
        path, command = resolve(words)
        assert path, f"{mention.where()}: `{mention.text}` names no command"
        for word in words[len(path):]:
            option = word.strip("[]").split("=")[0]
            if option.startswith("--"):
                assert option in options_of(command), \
                    f"{mention.where()}: `stafet {' '.join(path)}` has no option {option}"


def concrete(mention: Mention) -> bool:
    """A command as it would be typed: no placeholder, no optional part, no alternatives."""
    return mention.fenced and "[" not in mention.text and "|" not in mention.text \
        and not any(PLACEHOLDER.match(word) for word in mention.text.split())


def skipped(mention: Mention) -> str | None:
    path, _ = resolve(mention.text.split()[1:])
    for length in range(len(path), 0, -1):
        reason = SKIPPED.get(" ".join(path[:length]))
        if reason is not None:
            return reason
    return None


RUNNABLE_PAGES = sorted({m.page for m in MENTIONS if concrete(m) and skipped(m) is None})


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_runnable_command_of_a_page_runs_in_its_order(page: Path, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(REPO_ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    ran = 0
    for mention in (m for m in mentions(page) if concrete(m) and skipped(m) is None):
        done = subprocess.run([STAFET, *mention.text.split()[1:]], capture_output=True, text=True, timeout=300,
                              check=False, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"{mention.where()}: `{mention.text}` exited {done.returncode}:\n{done.stderr}"
        ran += 1
    assert ran > 0


def test_the_skip_list_names_only_commands_that_exist_and_the_docs_use() -> None:
    for name in SKIPPED:
        resolve(name.split())
    used = {" ".join(resolve(m.text.split()[1:])[0]) for m in MENTIONS if concrete(m)}
    assert any(name in used for name in SKIPPED)


def test_a_drifted_command_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "drift.md"
    page.write_text("Regenerate them with `stafet db docs`.\n", encoding="utf-8")
    (mention,) = mentions(page)
    with pytest.raises(AssertionError, match="stafet db docs`: no such command"):
        resolve(variants(mention.text)[0])


def test_the_outcome_key_is_documented_as_it_is_built() -> None:
    """docs/exports.md said the key holds the version; it never did (a new version that
    prices an outcome the same must leave its payment alone)."""
    import datetime as dt

    from cli.reporting.exports import TABLES
    from shared.domain.contracts.evaluation import OutcomeDecision, OutcomeStatus
    from shared.domain.contracts.payments import outcome_key

    decision = OutcomeDecision("c", 7, "o", "k1:s", "ev-1", "school", OutcomeStatus.VERIFIED, None,
                               dt.date(2024, 1, 1))
    assert outcome_key(decision).split("|") == ["c", "o", "k1:s", "ev-1"]
    described = next(c.description for t in TABLES.values() for c in t.columns if c.name == "outcome_key")
    assert described.startswith("The outcome's identity: contract, outcome, subject, trigger ")
    page = (REPO_ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
    assert "contract, version, outcome" not in page
