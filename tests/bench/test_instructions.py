"""bench/instructions.py: machine instructions per hook call, counted by callgrind."""

from __future__ import annotations

import shutil

import pytest

from bench.instructions import parse_collected
from tests.bench.modules import run_module

CALLGRIND_SUMMARY = """==1== Events    : Ir
==1== Collected : 15172019
==1==
==1== I   refs:      15,172,019
"""


def test_the_count_is_read_from_callgrinds_summary() -> None:
    assert parse_collected(CALLGRIND_SUMMARY, 0) == 15_172_019


@pytest.mark.parametrize(
    ("output", "returncode"), [(CALLGRIND_SUMMARY, 1), ("==1== Events : Ir\n", 0)]
)
def test_a_failed_run_or_a_missing_summary_is_an_error_not_a_count(
    output: str, returncode: int
) -> None:
    with pytest.raises(RuntimeError, match="callgrind failed"):
        parse_collected(output, returncode)


@pytest.mark.integration
def test_one_small_call_is_counted_under_callgrind() -> None:
    """End to end (about a minute and a half: the service starts under valgrind). Only the
    measured call is counted: the start-up alone executes billions of instructions."""
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is not installed: run scripts/install-bench-deps.sh (make test does)")
    run = run_module("bench.instructions", "--chart", "small", "--calls", "1")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    count = int(run.stdout.split(" instructions per call")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert 1_000_000 < count < 200_000_000, run.stdout
