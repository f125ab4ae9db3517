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
