"""Benchmark: scheduler throughput (events/s) and peak RSS.

    .venv/bin/python benchmarks/bench_scheduler.py            # full run, 10k and 1M events in the log
    .venv/bin/python benchmarks/bench_scheduler.py --quick    # 10k and 100k, fewer events
    .venv/bin/python benchmarks/bench_scheduler.py --profile --workflows 1000 --sizes 1000000

What is measured: the scheduler consuming the log and committing, the way
``Engine.step()`` does it (executor poll, timers, ``consume(batch_size)``,
``Engine._commit()``: the write, then the rules on the status events it
appended, taken from memory; all in one transaction per batch), but with
``max_parallel=0`` and without ``Engine._act()``: nothing is launched, so no
process is spawned.

For each log size (events already in the log and consumed: the history)
and each number of registered workflows, a fresh child process opens a copy
of the pre-filled database, registers the workflows, and then times:

* no match: events whose key no rule names;
* match: events that each start one execution and its one task execution
  (workflow ``bench-i`` has ``trigger_on("bench.trigger.i")`` and one task
  with no START rule; event ``j`` has key ``bench.trigger.{j % workflows}``).
  Each such event makes the scheduler append two status events (execution
  RUNNING, task QUEUED), which it consumes too; the time covers them.

The child runs with the collector settings of the service's process
(:func:`aiflow_nb.scheduler.collector.settle`), applied once the workflows
are submitted.

Peak RSS is the child's VmHWM (the whole process: Python, DuckDB, the
scheduler's memory).  The temporary folder is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import fmt_rate, peak_rss_mb, print_machine, print_table, profiled, record, rss_mb, verdict

NO_MATCH_TARGET = 100_000
MATCH_TARGET = 10_000
RSS_TARGET_MB = 300
#: rate at 1M / rate at 10k: "no slowdown", allowing for measurement noise.
SLOWDOWN_TARGET = 0.8
CHUNK = 100_000
#: Each measurement is split in rounds: best and median over them.
ROUNDS = 5


# -- child processes ---------------------------------------------------------------


def child_prefill(home: Path, size: int, out: Path) -> None:
    """A home whose log holds ``size`` events, all consumed already."""
    from aiflow_nb import Engine, Event

    start = time.perf_counter()
    engine = Engine(home)
    try:
        for first in range(0, size, CHUNK):
            n = min(CHUNK, size - first)
            engine.log.append_many([Event("bench.history", {"i": i}, sender="bench") for i in range(first, first + n)])
        # History: the scheduler has consumed it already.
        scheduler = engine.scheduler
        with engine.db.transaction():
            scheduler.checkpoint = engine.log.latest_offset()
            scheduler.changes.checkpoint = scheduler.checkpoint
            scheduler.commit()
        assert engine.log.latest_offset() == size
    finally:
        engine.close()
    out.write_text(json.dumps({"seconds": time.perf_counter() - start}))


def _drain(engine: Any) -> tuple[int, int]:
    """Engine.step() without launching, until the log is consumed: (batches, events)."""
    scheduler = engine.scheduler
    batches = events = 0
    while True:
        with engine.db.lock:
            outcomes = engine.executor.poll()
            with engine.db.transaction():
                before = scheduler.checkpoint
                for outcome in outcomes:
                    scheduler.finished(outcome)
                scheduler.tick(engine.clock())
                scheduler.consume(engine.batch_size)
                # The write and the rounds on the status events it appended (read from memory), as step() does.
                engine._commit()
                consumed = scheduler.checkpoint - before
        if not consumed:
            return batches, events
        batches += 1
        events += consumed


def _send(engine: Any, keys: list[str]) -> None:
    from aiflow_nb import Event

    for first in range(0, len(keys), CHUNK):
        engine.log.append_many([Event(k, {"i": i}, sender="bench") for i, k in enumerate(keys[first : first + CHUNK])])


def _timed_rounds(engine: Any, keys: list[str], rounds: int, profile: bool, title: str) -> dict[str, Any]:
    """Send ``keys`` in ``rounds`` parts; time the drain of each: wall and CPU seconds, log events consumed."""
    walls, cpus, consumed = [], [], 0
    size = len(keys) // rounds
    with profiled(profile, title):
        for r in range(rounds):
            part = keys[r * size : (r + 1) * size] if r < rounds - 1 else keys[r * size :]
            _send(engine, part)
            start, cpu = time.perf_counter(), time.process_time()
            _, n = _drain(engine)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - start)
            consumed += n
    return {"events": len(keys), "sizes": [size] * (rounds - 1) + [len(keys) - size * (rounds - 1)],
            "walls": walls, "cpus": cpus, "consumed": consumed}  # fmt: skip


def child_measure(home: Path, workflows: int, no_match: int, match: int, profile: bool, out: Path) -> None:
    from aiflow_nb import BashTask, Engine, Workflow
    from aiflow_nb.scheduler.collector import settle

    result: dict[str, Any] = {}
    start = time.perf_counter()
    engine = Engine(home, max_parallel=0)
    result["open_seconds"] = time.perf_counter() - start
    try:
        history = engine.log.latest_offset()
        assert engine.scheduler.checkpoint == history
        start = time.perf_counter()
        for i in range(workflows):
            with Workflow(f"bench-{i}") as wf:
                BashTask("t", command="true")
            wf.trigger_on(f"bench.trigger.{i}")
            engine.submit(wf)
        result["submit_seconds"] = time.perf_counter() - start
        _drain(engine)  # the submits' own events, if any
        settle()  # the collector settings the service's main applies once its engine is open
        result["rss_ready_mb"] = rss_mb()

        label = f"{workflows} workflows, {history:,} events in the log"
        result["no_match"] = _timed_rounds(engine, ["bench.nomatch"] * no_match, ROUNDS, profile, f"no match, {label}")
        assert result["no_match"]["consumed"] == no_match

        tasks_before = engine.scheduler.last_task_id
        keys = [f"bench.trigger.{i % workflows}" for i in range(match)]
        result["match"] = _timed_rounds(engine, keys, ROUNDS, profile, f"match, {label}")
        created = engine.scheduler.last_task_id - tasks_before
        assert created == match, f"{created} task executions for {match} events"
        assert engine.log.latest_offset() == engine.scheduler.checkpoint
        result["rss_mb"] = peak_rss_mb()
    finally:
        engine.close()
    out.write_text(json.dumps(result))


def _rates(run: dict[str, Any]) -> tuple[float, float, float]:
    """(best, median) events/s over the rounds, and the best events per CPU second.

    Other processes only ever slow a round down, so the best round is the
    figure least disturbed by them.
    """
    walls = sorted(n / w for n, w in zip(run["sizes"], run["walls"], strict=True))
    cpus = sorted(n / c for n, c in zip(run["sizes"], run["cpus"], strict=True))
    return walls[-1], statistics.median(walls), cpus[-1]


# -- the parent ----------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    out = Path(args[1]).parent / f"result-{time.monotonic_ns()}.json"
    subprocess.run([sys.executable, __file__, "--child", *args, str(out)], check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="log sizes 10k and 100k, fewer events")
    parser.add_argument("--profile", action="store_true", help="cProfile every timed drain")
    parser.add_argument("--workflows", help="comma-separated workflow counts (default 1,100,1000)")
    parser.add_argument("--sizes", help="comma-separated events in the log (default 10000,1000000)")
    parser.add_argument("--no-match", type=int, help="events matching no rule per run")
    parser.add_argument("--match", type=int, help="events each creating a task execution per run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, *rest = args.child
        if mode == "prefill":
            child_prefill(Path(rest[0]), int(rest[1]), Path(rest[2]))
        else:
            child_measure(Path(rest[0]), int(rest[1]), int(rest[2]), int(rest[3]), rest[4] == "1", Path(rest[5]))
        return 0

    workflows = [int(x) for x in args.workflows.split(",")] if args.workflows else [1, 100, 1_000]
    default_sizes = "10000,100000" if args.quick else "10000,1000000"
    sizes = [int(x) for x in (args.sizes or default_sizes).split(",")]
    no_match = args.no_match or (10_000 if args.quick else 50_000)
    match = args.match or (2_000 if args.quick else 10_000)

    print("aiflow-nb benchmark: scheduler (launch excluded)")
    print_machine()
    print(f"per run: {no_match:,} events matching no rule, then {match:,} events each creating a task execution")
    print("batch size 1000 (the Engine default); every child process measures one row\n")

    results: dict[tuple[int, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="aiflow-bench-sched-") as tmp:
        folder = Path(tmp)
        for size in sizes:
            filled = _child(["prefill", str(folder / f"base-{size}"), str(size)])
            print(f"pre-filled {size:,} events in {filled['seconds']:.1f} s", flush=True)
        # The sizes of one workflow count back to back: their comparison sees the same machine load.
        for count in workflows:
            for size in sizes:
                home = folder / f"run-{size}-{count}"
                shutil.copytree(folder / f"base-{size}", home, ignore=shutil.ignore_patterns(".runs-ended"))
                results[(size, count)] = r = _child(
                    ["measure", str(home), str(count), str(no_match), str(match), "1" if args.profile else "0"]
                )
                shutil.rmtree(home)
                nm, m = _rates(r["no_match"])[0], _rates(r["match"])[0]
                print(
                    f"  {count:>5} workflows, {size:>9,} in the log: opened in {r['open_seconds']:.2f} s, "
                    f"{count} submits in {r['submit_seconds']:.1f} s, no match {nm:,.0f}/s, match {m:,.0f}/s",
                    flush=True,
                )
    print()

    rows = []
    for (size, count), r in sorted(results.items()):
        nm, nm_median, nm_cpu = _rates(r["no_match"])
        m, m_median, m_cpu = _rates(r["match"])
        where = f"{size:,} in the log, {count:,} workflows"
        record(f"no match, {where}", nm, "events/s", f">= {NO_MATCH_TARGET:,} {verdict(nm, NO_MATCH_TARGET)}")
        record(f"match, {where}", m, "events/s", f">= {MATCH_TARGET:,} {verdict(m, MATCH_TARGET)}")
        rows.append(
            [
                f"{size:,}",
                f"{count:,}",
                fmt_rate(nm),
                fmt_rate(nm_median),
                fmt_rate(nm_cpu),
                verdict(nm, NO_MATCH_TARGET),
                fmt_rate(m),
                fmt_rate(m_median),
                fmt_rate(m_cpu),
                verdict(m, MATCH_TARGET),
                fmt_rate(r["match"]["consumed"] / sum(r["match"]["walls"])),
                f"{r['rss_ready_mb']:.0f}" if r["rss_ready_mb"] is not None else "-",
                f"{r['rss_mb']:.0f}",
                verdict(r["rss_mb"], RSS_TARGET_MB, higher_is_better=False),
            ]
        )
    print(f"targets: no match >= {NO_MATCH_TARGET:,}/s, match >= {MATCH_TARGET:,}/s, peak RSS < {RSS_TARGET_MB} MB")
    print_table(
        ["log", "workflows", "no match/s", "median", "per CPU s", "", "match/s", "median", "per CPU s", "",
         "log events/s", "RSS MB ready", "peak", ""],
        rows,
    )  # fmt: skip
    print(f"events/s: best of {ROUNDS} rounds (judged against the target) and the median; per CPU s: events per")
    print("second of the process's CPU time (best round), steadier when other processes run.  log events/s: what the")
    print("match run consumed in all (its events and the status events they caused) per wall second.  RSS MB")
    print("ready: once the log is open and the workflows submitted; peak: VmHWM at the end (all of the process).")
    print()

    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        rows = []
        for count in workflows:
            a, b = results[(small, count)], results[(large, count)]
            for kind in ("no_match", "match"):
                (before, _, cpu_before), (after, _, cpu_after) = _rates(a[kind]), _rates(b[kind])
                cpu_ratio = cpu_after / cpu_before
                rows.append(
                    [f"{count:,}", kind.replace("_", " "), fmt_rate(before), fmt_rate(after), f"{after / before:.2f}",
                     fmt_rate(cpu_before), fmt_rate(cpu_after), f"{cpu_ratio:.2f}", verdict(cpu_ratio, SLOWDOWN_TARGET)]
                )  # fmt: skip
        print(f"slowdown from {small:,} to {large:,} events in the log (ratio >= {SLOWDOWN_TARGET} counts as none;")
        print("judged on the per-CPU-second rates, which other processes disturb least):")
        print_table(
            ["workflows", "events", f"/s at {small:,}", f"at {large:,}", "ratio",
             f"per CPU s at {small:,}", f"at {large:,}", "ratio", ""],
            rows,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
