"""Shared helpers of the benchmarks: the machine, peak RSS, timing, tables."""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import duckdb
    import pyarrow

    ram = _ram_gib()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": f"{ram:.1f} GiB" if ram is not None else "unknown",
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "load average (1/5/15 min)": " ".join(f"{x:.2f}" for x in load) if load else "unknown",
    }


def print_machine() -> None:
    for key, value in machine().items():
        print(f"{key:>26}: {value}")
    print()


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """This process's resident set size now, in MiB (None where /proc is missing)."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024


@contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the wall time in seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def rates(count: int, seconds: Sequence[float]) -> tuple[float, float]:
    """(best, median) events per second over repeated runs of ``count`` events."""
    best = count / min(seconds)
    median = count / statistics.median(seconds)
    return best, median


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "ok" if ok else "MISS"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        # Text left, numbers right.
        parts = []
        for i, cell in enumerate(row):
            numeric = cell[:1].isdigit() or cell[:1] in "<>≥≤"
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


@contextmanager
def profiled(enabled: bool, title: str, top: int = 25) -> Iterator[None]:
    """Profile the block with cProfile and print its top functions (by own time)."""
    if not enabled:
        yield
        return
    profile = cProfile.Profile(time.process_time)  # CPU time: other processes may be running
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
        print(f"--- profile: {title} ---")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
        print()


def run_callable(fn: Callable[[], Any], repeat: int) -> tuple[list[float], list[float]]:
    """(wall times, CPU times) of ``repeat`` calls of ``fn``, in seconds.

    CPU time is the whole process's (DuckDB's threads too); it moves less
    than wall time when other processes compete for the cores.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - start)
    return walls, cpus


def papermill_once(notebook: Path, out: Path) -> None:
    """One ``papermill.execute_notebook`` of ``notebook`` on ``python3``, its kernel shut down at once."""
    import papermill

    papermill.execute_notebook(
        str(notebook), str(out), kernel_name="python3", progress_bar=False, shutdown_kernel="immediate"
    )


def papermill_runs(notebook: Path, out: Path, samples: int) -> list[float]:
    """Wall times (s) of ``samples`` papermill runs of ``notebook`` in this process, after one that warms it up."""
    latencies = []
    for _ in range(samples + 1):
        start = time.perf_counter()
        papermill_once(notebook, out)
        latencies.append(time.perf_counter() - start)
    return latencies[1:]


#: A JSON-lines file each benchmark adds its headline figures to (set by run_all.py).
SUMMARY_ENV = "AIFLOW_NB_BENCH_SUMMARY"


def record(case: str, value: float, unit: str, target: str = "-") -> None:
    """Add a headline figure to the run's summary (nothing happens outside ``run_all.py``)."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    import json

    line = {"benchmark": os.path.basename(sys.argv[0]), "case": case, "value": value, "unit": unit, "target": target}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


#: Events appended per call while filling a large log.
FILL_CHUNK = 100_000


def fill_large_log(home: Any, events: int, workflows: int, runs: int) -> None:
    """A home whose log holds ``events`` events: ``workflows`` submitted workflows ``w<n>`` (each triggered by
    ``w<n>.go``, one task), ``runs`` triggering events spread over them, each run ended SUCCESS (no process
    launched), and history no rule reads for the rest.
    """
    from aiflow_nb import BashTask, Engine, Event, Workflow
    from aiflow_nb.workflow import TaskStatus
    from aiflow_nb.workflow.records import Outcome

    with Engine(home, max_parallel=0) as engine:
        for n in range(workflows):
            with Workflow(f"w{n}") as wf:
                BashTask("t", command="true")
            engine.submit(wf.trigger_on(f"w{n}.go"))
        # Each run logs 7: its event, execution RUNNING, task QUEUED, its outcome (an input), RUNNING and
        # SUCCESS, execution SUCCESS.
        history = events - runs * 7
        for first in range(0, history, FILL_CHUNK):
            n = min(FILL_CHUNK, history - first)
            engine.log.append_many([Event("bench.history", {"i": i}, sender="bench") for i in range(first, first + n)])
        with engine.db.transaction():
            engine.scheduler.checkpoint = engine.scheduler.changes.checkpoint = engine.log.latest_offset()
            engine.scheduler.commit(force=True)
        for first in range(0, runs, 1000):
            engine.send_events([Event(f"w{i % workflows}.go", i) for i in range(first, min(runs, first + 1000))])
        while engine.step():
            pass
        alive = sorted(engine.scheduler.alive.values(), key=lambda te: te.id)
        with engine.db.lock, engine.db.transaction():
            for te in alive:
                engine.scheduler.finished(Outcome(te.id, te.attempt, TaskStatus.SUCCESS))
            engine._commit()
        while engine.step():
            pass
