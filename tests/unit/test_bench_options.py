"""`make bench`'s options and its latency arithmetic (no servers: the figures themselves
come from `make bench`, never from tests)."""

from __future__ import annotations

import pytest

from bench.run import PARTS, parse, percentiles_ms


def test_by_default_every_part_runs() -> None:
    assert parse([]).only == PARTS


def test_replicas_bring_the_one_replica_run_they_are_compared_with() -> None:
    assert parse(["--only", "replicas"]).only == ("replicas", "end_to_end")
    assert parse(["--only", "latency, stages"]).only == ("latency", "stages")


def test_an_unknown_part_is_one_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["--only", "latency,everything"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown part everything" in error
    assert "Traceback" not in error


def test_percentiles_are_read_from_the_sorted_delays_in_milliseconds() -> None:
    delays = [i / 1000 for i in range(100, 0, -1)]  # 1..100 ms, unsorted
    figures = percentiles_ms(delays)
    assert figures == {"p50_ms": pytest.approx(51), "p95_ms": pytest.approx(96), "p99_ms": pytest.approx(100),
                       "max_ms": pytest.approx(100)}


def test_a_process_tree_counts_the_cpu_of_children_it_waited_for() -> None:
    # PostgreSQL's backends end with their connections: their CPU must still be counted
    # (the postmaster's cutime/cstime), or a stage's server CPU would be too low.
    import subprocess
    import sys

    from bench.measure import process_tree_cpu_s

    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "subprocess.run([sys.executable, '-c', 'import time\\nend = time.process_time() + 0.3\\n"
        "while time.process_time() < end: pass'])\n"
        "print('child done', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "child done"
        assert process_tree_cpu_s(parent.pid) >= 0.25  # /proc counts in clock ticks
    finally:
        parent.kill()
        parent.wait()


def test_the_nation_bench_takes_its_tenant_counts_years_and_share_of_births() -> None:
    arguments = parse(["--nation", "--years", "1"])
    assert arguments.nation is True
    assert (arguments.tenants, arguments.years, arguments.nation_fraction) == ((1, 10, 98), 1, 0.1)
    assert parse(["--nation", "--tenants", "2, 5", "--nation-fraction", "0.02"]).tenants == (2, 5)
    assert parse([]).nation is False


@pytest.mark.parametrize(("argv", "complaint"), [
    (["--nation", "--tenants", "1,99"], "tenant counts are 1 to 98"),
    (["--nation", "--years", "0"], "at least 1"),
    (["--nation", "--nation-fraction", "1.5"], "above 0 and at most 1"),
])
def test_a_nation_bench_argument_out_of_range_is_one_usage_error(
        argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert complaint in error
    assert "Traceback" not in error


def test_make_bench_with_nation_runs_the_nation_and_not_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.nation_stack
    import bench.run

    ran: list[str] = []

    async def nation(arguments: object) -> None:
        ran.append("nation")

    async def parts(arguments: object) -> None:
        ran.append("parts")

    monkeypatch.setattr(bench.nation_stack, "main", nation)
    monkeypatch.setattr(bench.run, "main", parts)
    bench.run.run(parse(["--nation", "--years", "1"]))
    bench.run.run(parse([]))
    assert ran == ["nation", "parts"]


def test_the_nation_bench_plans_a_share_of_the_tenants_births_and_reports_cpu_per_event_and_tenant() -> None:
    from bench.nation_stack import Plan, figures, plans
    from cli.synthetic.nation import nation_births

    planned = plans((1, 10, 98), years=1, fraction=0.1)
    assert [p.tenants for p in planned] == [1, 10, 98]
    assert [p.children for p in planned] == [nation_births(t, 1, 0.1) for t in (1, 10, 98)]
    assert planned[0].children < planned[1].children < planned[2].children == 5_747
    row = figures(Plan(10, 100), events=500, seconds=2.0, cpu={"ingest": 0.1, "verifier": 0.2},
                  servers_cpu={"kafka": 0.05}, idle={"ingest": 0.05, "kafka": 0.08}, payments=200)
    assert row["us_per_event"] == {"ingest": pytest.approx(200), "verifier": pytest.approx(400),
                                   "kafka": pytest.approx(100)}
    assert row["services_us_per_event"] == pytest.approx(600)
    assert row["all_us_per_event"] == pytest.approx(700)
    assert row["cpu_s_per_tenant"] == pytest.approx(0.035)
    assert row["above_idle_us_per_event"] == pytest.approx(500)  # ingest 0.05 + verifier 0.2 + kafka 0 (never below)
    assert row["events_per_s"] == pytest.approx(250)


def test_the_nation_bench_reports_the_median_of_each_sizes_runs() -> None:
    from bench.nation_stack import medians

    def run(tenants: int, us: float) -> dict[str, object]:
        return {"tenants": tenants, "us_per_event": {"verifier": us}, "services_us_per_event": us,
                "all_us_per_event": 2 * us, "above_idle_us_per_event": us / 2}

    found = medians([run(1, 300), run(98, 100), run(1, 100), run(98, 500), run(1, 200), run(98, 300)])
    assert [(m["tenants"], m["runs"], m["services_us_per_event"], m["all_us_per_event"]) for m in found] == [
        (1, 3, 200, 400), (98, 3, 300, 600)]
    assert found[1]["us_per_event"] == {"verifier": 300}
    assert medians([run(10, 100), run(10, 300)])[0]["above_idle_us_per_event"] == 100  # two runs: their mean
