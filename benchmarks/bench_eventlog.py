"""Benchmark: events/s of EventLog.append and EventLog.append_many.

    .venv/bin/python benchmarks/bench_eventlog.py            # full run (~1 min)
    .venv/bin/python benchmarks/bench_eventlog.py --quick    # smaller sizes
    .venv/bin/python benchmarks/bench_eventlog.py --profile  # plus cProfile of append_many

Every case writes to its own fresh DuckDB file in a temporary folder that
is removed at the end.  Events are built before the clock starts: the
figures are the log's cost (validation, JSON encoding, idempotency look-up,
the insert and the commit), not the caller's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import fmt_rate, print_machine, print_table, profiled, rates, record, run_callable, verdict

from aiflow_nb import Event, EventLog

APPEND_MANY_TARGET = 200_000


def make_events(n: int, start: int = 0) -> list[Event]:
    return [
        Event("hour_complete", {"hour": "2026-11-27T10:00", "i": i}, sender="bench") for i in range(start, start + n)
    ]


class Case:
    """One fresh log file per case."""

    def __init__(self, folder: Path, name: str) -> None:
        self.log = EventLog(folder / f"{name}.duckdb")
        self.next = 0

    def batch(self, n: int) -> list[Event]:
        events = make_events(n, self.next)
        self.next += n
        return events

    def close(self) -> None:
        self.log.db.close()


def bench_append(folder: Path, n: int, keyed: bool) -> tuple[float, float]:
    case = Case(folder, f"append-{'keyed' if keyed else 'plain'}")
    events = case.batch(n)
    keys = [f"one-{i}" if keyed else None for i in range(n)]
    it = iter(zip(events, keys, strict=True))

    def one() -> None:
        event, key = next(it)
        case.log.append(event, idempotency_key=key)

    walls, cpus = run_callable(one, n)
    case.close()
    return n / sum(walls), n / sum(cpus)


def bench_append_many(folder: Path, size: int, repeat: int, keyed: bool, profile: bool) -> tuple[float, float, float]:
    case = Case(folder, f"many-{size}-{'keyed' if keyed else 'plain'}")
    batches = [case.batch(size) for _ in range(repeat)]
    keys = [[f"k-{b}-{i}" for i in range(size)] if keyed else None for b in range(repeat)]
    it = iter(zip(batches, keys, strict=True))

    def one() -> None:
        events, idem = next(it)
        offsets = case.log.append_many(events, idem)
        assert len(offsets) == size

    with profiled(profile, f"append_many {size:,} {'with' if keyed else 'without'} idempotency keys"):
        walls, cpus = run_callable(one, repeat)
    assert case.log.latest_offset() == size * repeat
    case.close()
    return (*rates(size, walls), rates(size, cpus)[0])


def bench_retry(folder: Path, size: int, repeat: int) -> tuple[float, float, float]:
    """append_many of a batch whose idempotency keys are all in the log already (a retried send)."""
    case = Case(folder, f"retry-{size}")
    events = case.batch(size)
    keys = [f"k-{i}" for i in range(size)]
    case.log.append_many(events, keys)

    def one() -> None:
        case.log.append_many(events, keys)

    walls, cpus = run_callable(one, repeat)
    assert case.log.latest_offset() == size
    case.close()
    return (*rates(size, walls), rates(size, cpus)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for development")
    parser.add_argument("--profile", action="store_true", help="cProfile the append_many cases")
    args = parser.parse_args(argv)

    singles = 300 if args.quick else 2_000
    sizes = [(1_000, 5), (10_000, 3), (100_000, 1)] if args.quick else [(1_000, 20), (10_000, 10), (100_000, 5)]

    print("aiflow-nb benchmark: event log")
    print_machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="aiflow-bench-log-") as tmp:
        folder = Path(tmp)
        for keyed in (False, True):
            wall, cpu = bench_append(folder, singles, keyed)
            rows.append(
                ["append", "yes" if keyed else "no", f"{singles:,} x 1", fmt_rate(wall), "-", fmt_rate(cpu), "-", "-"]
            )
        for keyed in (False, True):
            for size, repeat in sizes:
                best, median, cpu = bench_append_many(folder, size, repeat, keyed, args.profile)
                rows.append(
                    [
                        "append_many",
                        "yes" if keyed else "no",
                        f"{repeat} x {size:,}",
                        fmt_rate(best),
                        fmt_rate(median),
                        fmt_rate(cpu),
                        f">= {APPEND_MANY_TARGET:,}",
                        verdict(best, APPEND_MANY_TARGET),
                    ]
                )
                verdict_text = f">= {APPEND_MANY_TARGET:,} {verdict(best, APPEND_MANY_TARGET)}"
                record(f"append_many {size:,}, {'keyed' if keyed else 'no keys'}", best, "events/s", verdict_text)
        size, repeat = sizes[1]
        best, median, cpu = bench_retry(folder, size, repeat)
        rows.append(
            [
                "append_many, keys all known (a retry)",
                "yes",
                f"{repeat} x {size:,}",
                fmt_rate(best),
                fmt_rate(median),
                fmt_rate(cpu),
                "-",
                "-",
            ]
        )
    print_table(
        ["operation", "idempotency keys", "runs x events", "events/s (best)", "median", "per CPU second", "target", ""],
        rows,
    )
    print("append: one event per call, each its own transaction (the commit included); the rate over all calls.")
    print("append_many: one transaction per call; best and median over the runs (the target is judged on the best).")
    print("per CPU second: events per second of this process's CPU time (best run), steadier when other processes run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
