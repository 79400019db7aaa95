"""Benchmark: the crash matrix at length: SIGKILLs at seeded crash points, then the exactly-once checks.

    .venv/bin/python benchmarks/bench_crash_matrix.py                 # 100 crashes
    .venv/bin/python benchmarks/bench_crash_matrix.py --quick         # 30, as make test runs
    .venv/bin/python benchmarks/bench_crash_matrix.py --crashes 200 --seed 7

The same harness as tests/server/test_crash_matrix.py: a service under
load (event producers, a one-second schedule, repeated workflow submits)
is started with ``AIFLOW_NB_FAULTS=<point>:<pass>`` and kills itself there;
the next one starts on the same home.  At the end a fault-free service
drains the work and every acknowledged event, rule firing, run and workflow
version is checked.  Prints, per crash point, how many crashes, how long
the service ran before reaching it, and how long a restart took.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the harness lives with the tests

from _common import print_machine, print_table, record  # noqa: E402

from aiflow_nb.faults import POINTS  # noqa: E402
from tests.conftest import kill_runs  # noqa: E402
from tests.server import crash_matrix  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crashes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--quick", action="store_true", help=f"{3 * len(POINTS)} crashes")
    args = parser.parse_args(argv)
    count = 3 * len(POINTS) if args.quick else args.crashes
    print(f"aiflow-nb benchmark: crash matrix, {count} crashes, seed {args.seed}")
    print_machine()

    def progress(n: int, crash: crash_matrix.Crash, outcome: crash_matrix.Outcome) -> None:
        print(
            f"  crash {n:>3}/{count} at {crash!s:<18} after {outcome.to_crash[-1]:5.2f} s; "
            f"{len(outcome.load.acked):>5} events acknowledged",
            flush=True,
        )

    services: list[crash_matrix.Service] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="aiflow-crash-") as tmp:
        home, folder = Path(tmp) / "home", Path(tmp) / "work"
        folder.mkdir()
        try:
            outcome = crash_matrix.run(home, folder, args.seed, count, services, report=progress)
        except AssertionError as exc:
            print(f"\nFAIL (seed {args.seed}): {exc}", file=sys.stderr)
            return 1
        finally:
            for service in services:
                service.stop()
            kill_runs(home)
    took = time.monotonic() - started
    to_crash: dict[str, list[float]] = defaultdict(list)
    for crash, seconds in zip(outcome.crashes, outcome.to_crash, strict=True):
        to_crash[crash.point].append(seconds)
    print()
    print_table(
        ["crash point", "crashes", "reached after (median s)", "what a kill there leaves"],
        [[p, len(to_crash[p]), f"{statistics.median(to_crash[p]):.2f}", POINTS[p]] for p in POINTS if to_crash[p]],
    )
    ready = sorted(outcome.to_ready)
    print()
    print_table(
        ["figure", "value"],
        [
            ["crashes", str(count)],
            ["services that died while starting", str(len(outcome.died_starting))],
            ["restart to healthy, median / max s", f"{statistics.median(ready):.2f} / {ready[-1]:.2f}"],
            ["events acknowledged (each checked once in the log, one run)", f"{len(outcome.load.acked):,}"],
            ["workflow versions acknowledged (each checked stored whole)", f"{len(outcome.load.versions):,}"],
            ["wall time", f"{took:.0f} s"],
        ],
    )
    print("\nPASS: every acknowledged event once, every rule once per event, every run once, no half-written version")
    record("crash matrix: crashes survived", count, "crashes")
    record("crash matrix: restart to healthy (median)", statistics.median(ready) * 1000, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
