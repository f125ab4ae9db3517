"""Finance on the real broker and database: payout files out, the bank's answers back in.

The ledger service runs as a process; `stafet finance payout` and `stafet finance import`
run as the finance office would run them, against the same Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from shared.domain.events import PaymentInstruction, PaymentKind
from shared.domain.finance.iso20022 import PAIN_001, validate
from shared.platform.processes import ServiceProcess
from shared.platform.settings import REPO_ROOT
from shared.platform.topics import PAYMENTS, SETTLEMENTS, in_namespace
from tests.bank import camt054, pain002, transfers_of
from tests.kafka_helpers import produce
from tests.ledger_helpers import chain_report, entry_count, ledger_state
from tests.servers import Servers

pytestmark = pytest.mark.e2e
runner = CliRunner()
PAYER = "sonderborg-kommune"


def pid(n: int) -> str:
    return f"{n:032x}"


def payment(n: int, payee: str, amount_minor: int, day: int) -> PaymentInstruction:
    return PaymentInstruction(
        payment_id=pid(n), kind=PaymentKind.PAYMENT, contract_id="mobility-bonus", contract_version=1,
        outcome_id="school_ready", subject="k1:" + f"{n:064x}", payer=PAYER, payee=payee,
        amount_minor=amount_minor, currency="DKK", occurred_on=dt.date(2024, 2, day))


async def wait_for_entries(database_url: str, count: int, timeout_s: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await entry_count(database_url) < count:
        assert asyncio.get_running_loop().time() < deadline, f"fewer than {count} ledger entries"
        await asyncio.sleep(0.2)


async def stafet(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    # In a thread: the command runs its own event loop, as it does from a shell.
    result = await asyncio.to_thread(runner.invoke, app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


async def scalar(database_url: str, query: str, *args: object) -> object:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


def transfer_of(pain: bytes, payment_id: str) -> tuple[str, str, str]:
    """The (end-to-end id, amount, currency) of the transfer whose remittance names the payment."""
    root = validate(pain, PAIN_001)
    for transaction in root.iterfind(".//{*}CdtTrfTxInf"):
        if payment_id in [x.text for x in transaction.iterfind(".//{*}RfrdDocInf/{*}Nb")]:
            amount = transaction.find("{*}Amt/{*}InstdAmt")
            assert amount is not None
            return str(transaction.findtext("{*}PmtId/{*}EndToEndId")), str(amount.text), str(amount.get("Ccy"))
    raise AssertionError(f"{payment_id} is in no transfer")


async def test_a_payout_run_is_durable_voidable_reissued_byte_for_byte_and_its_returns_are_paid_again(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    journal = in_namespace(PAYMENTS, namespace).name
    settlements_topic = in_namespace(SETTLEMENTS, namespace).name
    # No user in DATABASE_URL: the finance commands connect as the finance role.
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    first = [payment(1, "alsskolen", 123_456, 3), payment(2, "jobvejen", 10_000, 4),
             payment(3, "alsvaerket", 50_000, 5), payment(4, "nordborg-skole", 777, 6),
             payment(6, "alsskolen", 544, 7),
             payment(5, "alsskolen", 1_000, 27)]  # outside the first range
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    pay = ["finance", "payout", "--from", "2024-02-01", "--to", "2024-02-20", "--execution-date", "2024-03-01",
           "--journal-topic", journal]
    try:
        await produce(servers.bootstrap_servers, journal, [p.model_dump_json().encode() for p in first])
        await wait_for_entries(database_url, 6)

        # A file that cannot be written marks nothing: a file error, and the retry pays everything.
        code, out, err = await stafet(env, *pay, "--out", "/proc/stafet-payout.xml")
        assert code == 2
        assert err.startswith("error: cannot write /proc/stafet-payout.xml"), err
        assert err.count("\n") == 1, err
        assert "nothing marked" in err
        assert await scalar(database_url, "SELECT count(*) FROM payout_lines") == 0

        # In Danske Bank's profile: the NemKonto payee goes in the file too; two of
        # alsskolen's payments are one transfer.
        code, out, err = await stafet(env, *pay, "--profile", "danske-bank", "--agreement-id", "4711",
                                      "--out", str(tmp_path / "feb.xml"), "--advice-dir", str(tmp_path / "advice"))
        assert code == 0, err
        assert "exported 5 payment(s) in 4 transfer(s), 1847.77 DKK" in out, out
        pain = (tmp_path / "feb.xml").read_bytes()
        validate(pain, PAIN_001)
        run_id = validate(pain, PAIN_001).findtext(".//{*}GrpHdr/{*}MsgId")
        assert run_id is not None
        assert transfer_of(pain, pid(1)) == transfer_of(pain, pid(6))
        assert transfer_of(pain, pid(1))[1:] == ("1240.00", "DKK")
        assert len(list((tmp_path / "advice").glob("alsskolen-*.csv"))) == 1
        # The same range again: nothing repeats, nothing is written.
        code, out, err = await stafet(env, *pay, "--out", str(tmp_path / "again.xml"))
        assert code == 0, err
        assert "nothing new to pay: 5 already exported" in out
        assert not (tmp_path / "again.xml").exists()
        # Listed with its file; reissued byte for byte.
        code, out, err = await stafet(env, "finance", "runs")
        assert code == 0, err
        assert run_id in out, out
        assert "written" in out, out
        assert hashlib.sha256(pain).hexdigest() in out, out
        code, out, err = await stafet(env, "finance", "payout", "--reissue", run_id, "--out", str(tmp_path / "re.xml"))
        assert code == 0, err
        assert (tmp_path / "re.xml").read_bytes() == pain

        # Voided (the file never went out): the same payments go in a new run with a new id.
        code, out, err = await stafet(env, "finance", "void", run_id)
        assert code == 0, err
        code, out, err = await stafet(env, *pay, "--profile", "danske-bank", "--agreement-id", "4711",
                                      "--out", str(tmp_path / "feb-2.xml"))
        assert code == 0, err
        assert "exported 5 payment(s)" in out
        pain = (tmp_path / "feb-2.xml").read_bytes()
        second_run = validate(pain, PAIN_001).findtext(".//{*}GrpHdr/{*}MsgId")
        assert second_run is not None
        assert second_run != run_id
        code, out, err = await stafet(env, "finance", "void", run_id)
        assert code == 2
        assert "run_voided" in err

        # The bank's status report: nordborg-skole's transfer is rejected before booking
        # (its payment is free again), the rest accepted: the run can no longer be voided.
        (tmp_path / "pain002.xml").write_bytes(pain002(pain, message_id="PSR-1", created_on=dt.date(2024, 3, 1),
                                                       rejected={transfer_of(pain, pid(4))[0]: "AC01"}))
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "pain002.xml"))
        assert code == 0, err
        assert f"rejected: {pid(4)}: AC01" in err
        assert f"run {second_run} is acknowledged" in out
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "pain002.xml"))
        assert code == 0
        assert "imported before" in out
        code, out, err = await stafet(env, "finance", "void", second_run)
        assert code == 2, err
        assert "run_acknowledged" in err, err

        # The bank books the four accepted transfers; jobvejen's comes back in the same
        # notification (closed account); the notification also carries a salary that is not ours.
        accepted = [transfer_of(pain, p) for p in (pid(1), pid(2), pid(3))]
        notification = camt054([*accepted, ("SALARY-2024-02", "100.00", "DKK")], booked_on=dt.date(2024, 3, 1),
                               returned={transfer_of(pain, pid(2))[0]: "AC04"}, message_id="NTF-1")
        (tmp_path / "camt054.xml").write_bytes(notification)
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "camt054.xml"), "--topic", settlements_topic)
        assert code == 2  # one unknown reference: nothing published without --skip-invalid
        assert "SALARY-2024-02: unknown_payment" in err
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "camt054.xml"), "--skip-invalid",
                                      "--topic", settlements_topic, "--wait", "60")
        assert code == 0, err
        assert "published 5 settlement(s) (4 paid, 1 returned, 0 failed), refused 1" in out, out
        # Imported again: every answer is already imported; nothing is published.
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "camt054.xml"), "--skip-invalid",
                                      "--topic", settlements_topic)
        assert code == 0, err
        assert "published 0 settlement(s)" in out, out
        assert "already imported 5" in out, out

        # alsvaerket's NemKonto transfer comes back a week later, in a notification of its own.
        later = camt054([transfer_of(pain, pid(3))], booked_on=dt.date(2024, 3, 8), returned={
            transfer_of(pain, pid(3))[0]: "MD07"}, book=False, message_id="NTF-2")
        (tmp_path / "later.xml").write_bytes(later)
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "later.xml"), "--topic",
                                      settlements_topic, "--wait", "60")
        assert code == 0, err
        assert "1 returned" in out
        code, out, err = await stafet(env, "ledger", "statement", "--institution", "alsvaerket")
        assert code == 0, err
        assert "returned" in out, out
        assert "MD07" in out, out
        assert pid(3) in out, out
        assert "Subtotals" in out, out

        # The next run pays what came back (jobvejen, alsvaerket) and what the bank rejected (nordborg-skole).
        code, out, err = await stafet(env, *pay, "--profile", "danske-bank", "--agreement-id", "4711",
                                      "--out", str(tmp_path / "mar.xml"))
        assert code == 0, err
        assert "exported 3 payment(s) in 3 transfer(s), 607.77 DKK" in out, out
        assert sorted(x for t in transfers_of((tmp_path / "mar.xml").read_bytes()) for x in [t[0]]) == sorted(
            transfer_of((tmp_path / "mar.xml").read_bytes(), p)[0] for p in (pid(2), pid(3), pid(4)))
        code, out, err = await stafet(env, "ledger", "statement", "--institution", "nosuch")
        assert code == 2
        assert "unknown institution 'nosuch'" in err
    finally:
        ledger.stop()
    balances = (await ledger_state(database_url))["balances"]
    assert isinstance(balances, dict)
    assert balances["receivable:alsskolen:paid"] == 124_000
    assert balances["receivable:alsskolen:pending"] == 1_000  # pid(5), outside the range
    assert balances["receivable:jobvejen:pending"] == 10_000  # returned: owed again
    assert balances["receivable:alsvaerket:pending"] == 50_000
    assert "receivable:jobvejen:paid" not in balances
    connection = await asyncpg.connect(database_url)
    try:
        reasons = [r["failure_reason"] for r in await connection.fetch(
            "SELECT failure_reason FROM ledger_entries WHERE kind = 'returned' ORDER BY sequence")]
        assert reasons == ["AC04", "MD07"]
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await connection.execute("DELETE FROM payout_lines")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await connection.execute("DELETE FROM payout_run_states")
    finally:
        await connection.close()
    assert (await chain_report(database_url)).ok


async def test_csv_answers_nemkonto_by_csv_and_internal_postings_for_the_payers_own_institutions(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    journal = in_namespace(PAYMENTS, namespace).name
    settlements_topic = in_namespace(SETTLEMENTS, namespace).name
    registry = tmp_path / "institutions.yaml"
    registry.write_text((REPO_ROOT / "examples" / "institutions.yaml").read_text(encoding="utf-8") + (
        "  - {id: egen-skole, name: Egen Skole, kind: primary_school, municipality: sonderborg,"
        " owned_by: sonderborg-kommune, cost_centre: '310200'}\n"), encoding="utf-8")
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers,
           "INSTITUTIONS_FILE": str(registry)}
    first = [payment(1, "alsskolen", 123_456, 3), payment(3, "alsvaerket", 50_000, 5),
             payment(7, "egen-skole", 70_000, 8), payment(8, "egen-skole", 1_000, 9)]
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal, [p.model_dump_json().encode() for p in first])
        await wait_for_entries(database_url, 4)
        # The payer's own school never goes to the bank: internal postings, balanced.
        code, out, err = await stafet(env, "finance", "payout", "--journal-topic", journal,
                                      "--from", "2024-02-01", "--to", "2024-02-29",
                                      "--format", "postings", "--out", str(tmp_path / "postings.csv"), "--excel")
        assert code == 0, err
        assert "exported 2 payment(s)" in out
        data = (tmp_path / "postings.csv").read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Danish Excel
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
        assert sum(int(r["debit_minor"]) for r in rows) == sum(int(r["credit_minor"]) for r in rows) == 71_000
        assert {r["cost_centre"] for r in rows if r["credit_minor"] != "0"} == {"310200"}
        assert "700,00" in {r["credit"] for r in rows}
        # Without a bank profile the NemKonto payee goes in the CSV, with names beside ids.
        code, out, err = await stafet(env, "finance", "payout", "--journal-topic", journal,
                                      "--from", "2024-02-01", "--to", "2024-02-29",
                                      "--format", "csv", "--out", str(tmp_path / "feb.csv"))
        assert code == 0, err
        rows = list(csv.DictReader((tmp_path / "feb.csv").open(encoding="utf-8")))
        assert sorted((r["end_to_end_id"], r["payee_name"]) for r in rows) == [
            (pid(1), "Alsskolen"), (pid(3), "Alsværket (social enterprise)")]
        # The CSV answer for the NemKonto payment, with the wrong amount first.
        answer = "end_to_end_id,status,booked_on,amount,currency,bank_reference,reason\n"
        (tmp_path / "wrong.csv").write_text(answer + f"{pid(3)},paid,2024-03-02,5.00,DKK,NK-1,\n")
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "wrong.csv"), "--topic", settlements_topic)
        assert code == 2
        assert "amount_mismatch" in err
        (tmp_path / "right.csv").write_text(answer + f"{pid(3)},paid,2024-03-02,500.00,DKK,NK-1,\n"
                                            + f"{pid(1)},failed,2024-03-02,1234.56,DKK,,AC06\n")
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "right.csv"), "--topic",
                                      settlements_topic, "--wait", "60")
        assert code == 0, err
        assert "(1 paid, 0 returned, 1 failed)" in out
    finally:
        ledger.stop()
    balances = (await ledger_state(database_url))["balances"]
    assert isinstance(balances, dict)
    assert balances["receivable:alsvaerket:paid"] == 50_000
    assert "receivable:alsskolen:pending" not in balances  # failed: voided to the budget
    assert balances["receivable:egen-skole:pending"] == 71_000  # posted internally; the ledger settles it on its answer


async def test_the_analysts_exports_of_a_settled_ledger(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str], tmp_path: Path) -> None:
    journal = in_namespace(PAYMENTS, namespace).name
    settlements_topic = in_namespace(SETTLEMENTS, namespace).name
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    records = [payment(1, "alsskolen", 123_456, 3), payment(2, "jobvejen", 10_000, 4),
               payment(3, "alsvaerket", 50_000, 5), payment(4, "nordborg-skole", 777, 6),
               payment(5, "alsskolen", 1_000, 27)]
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal, [p.model_dump_json().encode() for p in records])
        await wait_for_entries(database_url, 5)
        code, out, err = await stafet(env, "finance", "payout", "--journal-topic", journal,
                                      "--from", "2024-02-01", "--to", "2024-02-20",
                                      "--format", "csv", "--out", str(tmp_path / "feb.csv"))
        assert code == 0, err
        export_id = next(csv.DictReader((tmp_path / "feb.csv").open()))["export_id"]
        answer = "end_to_end_id,status,booked_on,amount,currency,bank_reference,reason\n"
        (tmp_path / "answers.csv").write_text(
            answer + f"{pid(1)},paid,2024-03-01,1234.56,DKK,R1,\n{pid(2)},paid,2024-03-01,100.00,DKK,R2,\n"
            f"{pid(3)},paid,2024-03-01,500.00,DKK,R3,\n{pid(4)},failed,2024-03-01,7.77,DKK,,AC04\n")
        code, out, err = await stafet(env, "finance", "import", str(tmp_path / "answers.csv"), "--topic",
                                      settlements_topic, "--wait", "60")
        assert code == 0, err
    finally:
        ledger.stop()
    balances = (await ledger_state(database_url))["balances"]
    assert isinstance(balances, dict)
    # The analysts' exports of the same ledger, in every format.
    code, out, err = await stafet(env, "export", "payments", "--format", "parquet", "--out", str(tmp_path / "p.parquet"))
    assert code == 0, err
    table = pq.read_table(tmp_path / "p.parquet")
    status = dict(zip(table.column("payment_id").to_pylist(), table.column("status").to_pylist(), strict=True))
    assert status == {pid(1): "paid", pid(2): "paid", pid(3): "paid", pid(4): "failed", pid(5): "pending"}
    exported_in = dict(zip(table.column("payment_id").to_pylist(), table.column("exported_in").to_pylist(),
                           strict=True))
    assert exported_in[pid(1)] == export_id
    payee_names = dict(zip(table.column("payment_id").to_pylist(), table.column("payee_name").to_pylist(),
                           strict=True))
    assert payee_names[pid(3)] == "Alsværket (social enterprise)"  # names beside the ids, from the registry
    assert table.schema.field("amount_minor").type == pa.int64()
    assert table.schema.field("payment_id").metadata[b"description"].startswith(b"Deterministic id")
    code, out, err = await stafet(env, "export", "payments", "--format", "jsonl", "--out", str(tmp_path / "p.jsonl"))
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert sorted((r["payment_id"], r["amount_minor"], r["status"]) for r in rows) == sorted(
        zip(table.column("payment_id").to_pylist(), table.column("amount_minor").to_pylist(),
            table.column("status").to_pylist(), strict=True))
    code, out, err = await stafet(env, "export", "balances", "--out", str(tmp_path / "b.csv"))
    assert code == 0, err
    exported_balances = {r["account"]: int(r["balance_minor"])
                         for r in csv.DictReader((tmp_path / "b.csv").open()) if int(r["balance_minor"])}
    assert exported_balances == balances
    code, out, err = await stafet(env, "export", "outcomes", "--format", "parquet", "--out", str(tmp_path / "o.pq"))
    assert code == 0, err
    assert "wrote 0 outcomes row(s)" in out  # no verifier ran here: an empty, typed file
    assert pq.read_table(tmp_path / "o.pq").schema.field("owed_minor").type == pa.int64()


async def test_a_payment_clawed_back_in_part_is_still_paid_and_one_clawed_back_in_full_is_not(
        servers: Servers, namespace: str, database_url: str, service_env: dict[str, str],
        tmp_path: Path) -> None:
    """Corrections after finality are differences (docs/contracts.md, "Finality"): a partial
    clawback must not keep the rest of its payment out of every payout file."""
    journal = in_namespace(PAYMENTS, namespace).name
    env = {"DATABASE_URL": service_env["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap_servers}
    partly, wholly = payment(11, "alsskolen", 10_000, 3), payment(12, "jobvejen", 5_000, 4)
    clawbacks = [
        partly.model_copy(update={"payment_id": pid(21), "kind": PaymentKind.CLAWBACK, "amount_minor": 3_000,
                                  "reverses_payment_id": partly.payment_id}),
        wholly.model_copy(update={"payment_id": pid(22), "kind": PaymentKind.CLAWBACK, "amount_minor": 5_000,
                                  "reverses_payment_id": wholly.payment_id}),
    ]
    ledger = ServiceProcess("ledger", service_env, tmp_path / "ledger.log")
    ledger.start()
    try:
        await produce(servers.bootstrap_servers, journal,
                      [p.model_dump_json().encode() for p in (partly, wholly, *clawbacks)])
        await wait_for_entries(database_url, 4)
        code, _out, err = await stafet(env, "finance", "payout", "--from", "2024-02-01", "--to", "2024-02-20",
                                      "--execution-date", "2024-03-01", "--journal-topic", journal,
                                      "--out", str(tmp_path / "feb.xml"))
        assert code == 0, err
        pain = (tmp_path / "feb.xml").read_bytes()
        assert transfer_of(pain, partly.payment_id)[1:] == ("100.00", "DKK")
        exported = await scalar(database_url, "SELECT array_agg(payment_id ORDER BY payment_id) FROM payout_lines")
        assert exported == [partly.payment_id]
    finally:
        ledger.stop()
