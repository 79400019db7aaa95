"""Benchmark: the decision core alone, and ``verify`` of a large home.

    .venv/bin/python benchmarks/bench_verify.py                 # 1M events, 10k task runs
    .venv/bin/python benchmarks/bench_verify.py --events 100000 --runs 1000

* core alone: each event meets a one-task START rule (a trigger: each starts
  an execution and queues its task), in memory, no database read or written
  (what was decided is dropped at the end): ``decide`` and the shell's
  ``apply`` in turn, as the engine does (``Core.process``), and ``decide``
  alone over the same state; per wall and per CPU second, and the share of
  the time Python's cyclic garbage collector took (the running executions
  pile up in memory; the batch to write is dropped every 1,000 events, as
  the engine's commit does once it is written: nothing is written here).
  It runs with the collector settings of the service's process
  (:func:`aiflow_nb.scheduler.collector.settle`: what start-up made frozen
  out of the collector's sight, young collections every 5,000 allocations),
  applied once the engine is open, as the service applies them;
* verify: a home whose log holds ``--events`` events, ``--runs`` of them
  starting an execution whose task then succeeds; ``Engine.verify()`` on the
  open engine, and ``aiflow-nb verify`` on the closed home (read-only open
  of the database, every block read, the fold and the comparison).

The temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import fill_large_log, print_machine

CORE_TARGET = 100_000
VERIFY_TARGET_S = 30.0
#: The engine writes (and drops from memory) the decisions of a batch of at most this many events.
WRITE_EVERY = 1000


def core_alone(home: Path, events: int) -> dict[str, float]:
    """The decision core on ``events`` events, each starting an execution and its one task.

    ``rate``/``cpu_rate``/``gc_share``: decide and apply each (wall, per CPU second, the collector's share
    of the wall time); ``decide_cpu_rate``: decide alone over the same state, per CPU second.
    """
    from aiflow_nb import BashTask, Engine, Event, Workflow
    from aiflow_nb.scheduler.collector import settle
    from aiflow_nb.scheduler.core import decide
    from aiflow_nb.scheduler.emitted import Emitted
    from aiflow_nb.scheduler.writes import Changes

    collecting = [0.0, 0.0]  # started, total

    def collector(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]

    with Engine(home, max_parallel=0) as engine:
        with Workflow("core") as wf:
            BashTask("t", command="true")
        wf.trigger_on("core.go")
        engine.submit(wf)
        batch = [Event("core.go", i) for i in range(events)]
        scheduler = engine.scheduler
        settle()  # what the service's main does once its engine is open
        with engine.db.lock:
            cpu = time.process_time()
            for event in batch:
                decide(scheduler, event)
            decide_cpu = time.process_time() - cpu
            gc.callbacks.append(collector)
            start, cpu = time.perf_counter(), time.process_time()
            try:
                for first in range(0, events, WRITE_EVERY):
                    for event in batch[first : first + WRITE_EVERY]:
                        scheduler.apply(decide(scheduler, event))
                    # What the engine's commit does with the batch once written (nothing is written here).
                    scheduler.changes, scheduler.events = Changes(), Emitted()
            finally:
                gc.callbacks.remove(collector)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            assert scheduler.last_execution_id == events
            scheduler.load()  # drop what it decided: nothing is written
    return {
        "rate": events / seconds,
        "cpu_rate": events / cpu_seconds,
        "gc_share": collecting[1] / seconds,
        "decide_cpu_rate": events / decide_cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--core-events", type=int, default=100_000)
    args = parser.parse_args(argv)
    print("aiflow-nb benchmark: the decision core alone, and verify")
    print_machine()
    folder = Path(tempfile.mkdtemp(prefix="aiflow-bench-verify-"))
    try:
        runs = [core_alone(folder / f"core{i}", args.core_events) for i in range(3)]
        best = max(runs, key=lambda r: r["rate"])
        print(
            f"core alone (decide + apply): {best['rate']:,.0f} events/s best of 3 ({args.core_events:,} events "
            f"each; target >= {CORE_TARGET:,}); {max(r['cpu_rate'] for r in runs):,.0f} per CPU second; "
            f"{best['gc_share']:.0%} of the best run's time in the garbage collector; decide alone "
            f"{max(r['decide_cpu_rate'] for r in runs):,.0f} per CPU second"
        )
        rates = [r["rate"] for r in runs]
        home = folder / "home"
        start = time.perf_counter()
        fill_large_log(home, args.events, 1, args.runs)
        print(f"filled {args.events:,} events, {args.runs:,} task runs in {time.perf_counter() - start:.1f} s")
        from aiflow_nb import Engine

        with Engine(home) as engine:
            start = time.perf_counter()
            report = engine.verify()
            in_engine = time.perf_counter() - start
        print(f"Engine.verify(): {in_engine:.2f} s -> {report.lines()[-1]}")
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "aiflow_nb.cli", "verify", "--home", str(home)], capture_output=True, text=True
        )
        cli = time.perf_counter() - start
        print(
            f"aiflow-nb verify (a process, read-only): {cli:.2f} s, exit {result.returncode} -> {result.stdout.strip()}"
        )
        ok = report.consistent and result.returncode == 0 and max(in_engine, cli) <= VERIFY_TARGET_S
        print(f"target: verify <= {VERIFY_TARGET_S:g} s: {'met' if ok else 'NOT met'}")
        return 0 if ok and max(rates) >= CORE_TARGET else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
