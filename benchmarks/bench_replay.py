"""Benchmark: ``Engine.replay`` and ``Engine.why`` on a large log.

    .venv/bin/python benchmarks/bench_replay.py                  # 1M events, 100 workflows, 10k task runs
    .venv/bin/python benchmarks/bench_replay.py --events 100000 --runs 1000

A home whose log holds ``--events`` events with ``--workflows`` submitted
workflows (each triggered by its own key, with one task); ``--runs`` of the
events start an execution whose task then succeeds (no process launched).
Then: a changed version of one workflow replayed over the whole log with
``--diff`` (its window read with the store's window query), and ``why`` of
the last run (median of 20). The temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _common import fill_large_log, print_machine

REPLAY_TARGET_S = 30.0
WHY_TARGET_MS = 50.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args(argv)
    print("aiflow-nb benchmark: replay and why on a large log")
    print_machine()
    folder = Path(tempfile.mkdtemp(prefix="aiflow-bench-replay-"))
    try:
        home = folder / "home"
        start = time.perf_counter()
        fill_large_log(home, args.events, args.workflows, args.runs)
        print(
            f"filled {args.events:,} events, {args.workflows} workflows, {args.runs:,} task runs "
            f"in {time.perf_counter() - start:.1f} s"
        )
        from aiflow_nb import BashTask, Engine, Workflow

        with Workflow("w0") as changed:
            BashTask("t", command="true")
            BashTask("u", command="true").start_after("t")
        changed.trigger_on("w0.go")
        with Engine(home) as engine:
            start = time.perf_counter()
            result = engine.replay(changed, diff=True)
            replay_s = time.perf_counter() - start
            summary = result.summary()
            assert result.diff is not None
            print(
                f"Engine.replay(--diff), whole log: {replay_s:.2f} s (target <= {REPLAY_TARGET_S:.0f} s) -> "
                f"{summary['executions']} executions, {len(result.diff['only_replay'])} runs only in the replay"
            )
            last = engine.scheduler.last_task_id
            times = []
            for _ in range(20):
                start = time.perf_counter()
                links = engine.why(last)
                times.append((time.perf_counter() - start) * 1000)
            print(
                f"Engine.why(last run): {statistics.median(times):.1f} ms median of 20 "
                f"(target <= {WHY_TARGET_MS:.0f} ms) -> {len(links)} links"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
