"""Engine start on a large home: opening the database and reading every block of it.

    .venv/bin/python benchmarks/bench_startup.py                # 1,000,000 events
    .venv/bin/python benchmarks/bench_startup.py --events 100000

The engine reads every block of every table when it starts (``Database.verify``)
so that a damaged file is named at once (docs/reliability.md).  This prints
what that costs: the whole start of an ``Engine`` (open, check, load the
scheduler's state, start the executor) and the check alone, median of
``--repeat`` starts of the same home.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import print_machine, print_table, record

from aiflow_nb import Engine, Event
from aiflow_nb.home import database_path
from aiflow_nb.storage import Database


def fill(home: Path, events: int, batch: int = 10_000) -> None:
    with Engine(home, executor="local") as engine:
        for start in range(0, events, batch):
            size = min(batch, events - start)
            engine.send_events(
                [Event(f"key-{i % 50}", {"i": start + i, "note": "x" * 40}) for i in range(size)],
                [f"idem-{start + i}" for i in range(size)],
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="starts measured (default 5)")
    parser.add_argument("--quick", action="store_true", help="100,000 events, 3 starts")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.repeat = 100_000, 3
    print("aiflow-nb benchmark: engine start")
    print_machine()
    with tempfile.TemporaryDirectory(prefix="aiflow-bench-start-") as tmp:
        home = Path(tmp) / "home"
        began = time.perf_counter()
        fill(home, args.events)
        size = database_path(home).stat().st_size
        print(
            f"\n{args.events:,} events (each with an idempotency key) written in "
            f"{time.perf_counter() - began:.1f} s; database {size / 2**20:.1f} MiB\n",
            flush=True,
        )
        starts, checks = [], []
        for _ in range(args.repeat):
            began = time.perf_counter()
            with Engine(home, executor="local"):
                starts.append(time.perf_counter() - began)
            db = Database(database_path(home))
            began = time.perf_counter()
            db.verify()
            checks.append(time.perf_counter() - began)
            db.close()
    start, check = statistics.median(starts), statistics.median(checks)
    print_table(
        ["what", "median", "min", "max"],
        [
            [
                "Engine start (check included)",
                f"{start * 1000:.0f} ms",
                f"{min(starts) * 1000:.0f} ms",
                f"{max(starts) * 1000:.0f} ms",
            ],
            [
                "reading every block (the check)",
                f"{check * 1000:.0f} ms",
                f"{min(checks) * 1000:.0f} ms",
                f"{max(checks) * 1000:.0f} ms",
            ],
        ],
    )
    record(f"engine start, {args.events:,} events", start * 1000, "ms")
    record(f"every block read, {args.events:,} events", check * 1000, "ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
