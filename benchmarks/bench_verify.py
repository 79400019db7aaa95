"""Benchmark: the decision core alone, and ``verify`` of a large home.

    .venv/bin/python benchmarks/bench_verify.py                 # 1M events, 10k task runs
    .venv/bin/python benchmarks/bench_verify.py --events 100000 --runs 1000

* core alone: ``Scheduler.process`` on events that each meet a one-task
  START rule (a trigger: each starts an execution and queues its task),
  in memory, no database read or written (what it decided is dropped);
  per wall and per CPU second, and the share of the time Python's cyclic
  garbage collector took (the decisions pile up in memory: nothing is written);
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

from _common import print_machine

CORE_TARGET = 100_000
VERIFY_TARGET_S = 30.0
CHUNK = 100_000


def core_alone(home: Path, events: int) -> tuple[float, float, float]:
    """Events a second ``Scheduler.process`` takes, each starting an execution and its one task.

    (wall rate, rate per CPU second, share of the wall time spent in Python's cyclic garbage collector).
    """
    from aiflow_nb import BashTask, Engine, Event, Workflow

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
        with engine.db.lock:
            gc.callbacks.append(collector)
            start, cpu = time.perf_counter(), time.process_time()
            try:
                for event in batch:
                    scheduler.process(event)
            finally:
                gc.callbacks.remove(collector)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            assert scheduler.last_execution_id == events
            scheduler.load()  # drop what it decided: nothing is written
    return events / seconds, events / cpu_seconds, collecting[1] / seconds


def fill(home: Path, events: int, runs: int) -> None:
    """``runs`` triggering events among ``events``, each run ended SUCCESS (no process launched)."""
    from aiflow_nb import BashTask, Engine, Event, Workflow
    from aiflow_nb.workflow import TaskStatus
    from aiflow_nb.workflow.records import Outcome

    with Engine(home, max_parallel=0) as engine:
        with Workflow("runs") as wf:
            BashTask("t", command="true")
        wf.trigger_on("runs.go")
        engine.submit(wf)
        # Each run logs 7: its event, execution RUNNING, task QUEUED, its outcome (an input), RUNNING and SUCCESS,
        # execution SUCCESS.
        history = events - runs * 7
        for first in range(0, history, CHUNK):
            n = min(CHUNK, history - first)
            engine.log.append_many([Event("bench.history", {"i": i}, sender="bench") for i in range(first, first + n)])
        with engine.db.transaction():
            engine.scheduler.checkpoint = engine.scheduler.changes.checkpoint = engine.log.latest_offset()
            engine.scheduler.commit(force=True)
        for first in range(0, runs, 1000):
            engine.send_events([Event("runs.go", i) for i in range(first, min(runs, first + 1000))])
        while engine.step():
            pass
        alive = sorted(engine.scheduler.alive.values(), key=lambda te: te.id)
        with engine.db.lock, engine.db.transaction():
            for te in alive:
                engine.scheduler.finished(Outcome(te.id, te.attempt, TaskStatus.SUCCESS))
            engine._commit()
        while engine.step():
            pass


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
        rates = [wall for wall, _, _ in runs]
        best = max(runs)
        print(
            f"core alone: {best[0]:,.0f} events/s best of 3 ({args.core_events:,} events each; "
            f"target >= {CORE_TARGET:,}); {max(cpu for _, cpu, _ in runs):,.0f} per CPU second; "
            f"{best[2]:.0%} of the best run's time in the garbage collector"
        )
        home = folder / "home"
        start = time.perf_counter()
        fill(home, args.events, args.runs)
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
