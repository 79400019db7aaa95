"""Benchmark: event to task SUCCESS, chains and fan-outs on ``local`` and ``kernel-pool``, next to papermill.

    .venv/bin/python benchmarks/bench_executors.py           # 20 events per case (~2 min)
    .venv/bin/python benchmarks/bench_executors.py --quick   # 5 per case

An engine (its loop in a thread, as in the service) on a fresh home in a
temporary folder; a workflow triggered by an event runs one task: a bash
``true``, or a one-cell notebook (``x = 1 + 1``).  Each event is sent once
the previous execution has ended and the pool has had a second to refill;
latency runs from ``send_event`` to the execution's SUCCESS as this process
sees it (polled every 2 ms).  Next to them, ``papermill.execute_notebook``
of the same notebook in this process (``shutdown_kernel="immediate"``).

Also the wall time of a chain of 10 tasks (``start_after``), bash or
one-cell notebooks, next to the same 10 runs one after another without
aiflow-nb (``bash -c true``, papermill); and of a fan-out of 20 notebook
tasks started by one event with at most 2 running at once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import print_machine, print_table

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()

import papermill  # noqa: E402

from aiflow_nb import BashTask, Engine, NotebookTask, Workflow, WorkflowStatus  # noqa: E402
from aiflow_nb.notebooks import write_code_notebook  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


#: ``pool_size`` of every kernel-pool engine (``--pool-size``).
POOL_SIZE = 1


def pool_options(executor: str) -> dict[str, Any]:
    return {"pool_size": POOL_SIZE} if executor == "kernel-pool" else {}


def event_to_success(home: Path, executor: str, wf: Workflow, samples: int) -> list[float]:
    engine = Engine(home, executor=executor, executor_options=pool_options(executor)).start()
    try:
        engine.submit(wf)
        time.sleep(3.0)  # spares started and their kernels ready
        latencies = []
        for i in range(samples + 1):
            start = time.perf_counter()
            engine.send_event(f"go.{wf.name}", i)
            ex = engine.executions(workflow=wf.name, limit=1)[-1]
            while not engine.execution(ex.id).status.finished:
                time.sleep(0.002)
            elapsed = time.perf_counter() - start
            assert engine.execution(ex.id).status is WorkflowStatus.SUCCESS, engine.task_executions(ex.id)
            if i:  # the first one warms this process's caches
                latencies.append(elapsed)
            time.sleep(1.0)
        return latencies
    finally:
        engine.close()


def whole_runs(home: Path, executor: str, wf: Workflow, repeat: int, **engine_options: Any) -> list[float]:
    """Wall time of ``repeat`` executions of ``wf``, from the start to its SUCCESS."""
    engine = Engine(home, executor=executor, executor_options=pool_options(executor), **engine_options).start()
    try:
        engine.submit(wf)
        time.sleep(3.0)
        walls = []
        for _ in range(repeat):
            start = time.perf_counter()
            ex = engine.start_execution(wf.name)
            while not engine.execution(ex).status.finished:
                time.sleep(0.002)
            walls.append(time.perf_counter() - start)
            assert engine.execution(ex).status is WorkflowStatus.SUCCESS, engine.task_executions(ex)
            time.sleep(2.0)
        return walls
    finally:
        engine.close()


def chain(name: str, kind: str, notebook: Path, length: int = 10) -> Workflow:
    """``length`` tasks, each starting after the one before (``start_after``)."""
    with Workflow(name) as wf:
        previous = None
        for i in range(length):
            task = BashTask(f"t{i}", command="true") if kind == "bash" else NotebookTask(f"t{i}", notebook=notebook)
            if previous is not None:
                task.start_after(previous)
            previous = task
    return wf


def fan_out(name: str, notebook: Path, width: int = 20) -> Workflow:
    """``width`` notebook tasks that all start on one event."""
    with Workflow(name) as wf:
        for i in range(width):
            NotebookTask(f"t{i}", notebook=notebook).action_on_event_received("START", f"fan.{name}")
    return wf


def papermill_runs(notebook: Path, out: Path, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples + 1):
        start = time.perf_counter()
        papermill.execute_notebook(
            str(notebook), str(out), kernel_name="python3", progress_bar=False, shutdown_kernel="immediate"
        )
        latencies.append(time.perf_counter() - start)
    return latencies[1:]


def sequential(kind: str, notebook: Path, tmp: Path, repeat: int) -> list[float]:
    """The alternative to a chain: the 10 runs one after another, papermill or bash itself."""
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(10):
            if kind == "bash":
                subprocess.run(["/bin/bash", "-c", "true"], check=True)
            else:
                papermill.execute_notebook(
                    str(notebook), str(tmp / "seq.ipynb"), kernel_name="python3", progress_bar=False,
                    shutdown_kernel="immediate",
                )  # fmt: skip
        walls.append(time.perf_counter() - start)
    return walls


def fan_out_runs(home: Path, executor: str, wf: Workflow, repeat: int) -> list[float]:
    """Wall time from the event that starts all 20 tasks to the last SUCCESS, 2 at a time."""
    engine = Engine(home, executor=executor, executor_options=pool_options(executor), max_parallel=2).start()
    try:
        engine.submit(wf)
        time.sleep(3.0)
        walls = []
        for _ in range(repeat):
            ex = engine.start_execution(wf.name)
            start = time.perf_counter()
            engine.send_event(f"fan.{wf.name}")
            while sum(t.status.value == "SUCCESS" for t in engine.task_executions(ex)) < 20:
                time.sleep(0.005)
            walls.append(time.perf_counter() - start)
            engine.wait_for(lambda ex=ex: engine.execution(ex).status.finished, 30)
            time.sleep(2.0)
        return walls
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 events per case")
    parser.add_argument("--pool-size", type=int, default=1, help="spare kernels per kernel name (kernel-pool)")
    args = parser.parse_args(argv)
    global POOL_SIZE
    POOL_SIZE = args.pool_size
    samples = 5 if args.quick else 20

    print(f"aiflow-nb benchmark: event to SUCCESS per executor (kernel-pool: pool_size {POOL_SIZE})")
    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="aiflow-bench-executors-"))
    notebook = write_code_notebook(tmp / "one_cell.ipynb", "x = 1 + 1")
    rows = []
    try:
        for kind in ("bash", "notebook"):
            for executor in ("local", "kernel-pool"):
                with Workflow(f"{kind}-{executor}") as wf:
                    if kind == "bash":
                        BashTask("t", command="true")
                    else:
                        NotebookTask("t", notebook=notebook)
                wf.trigger_on(f"go.{wf.name}")
                values = event_to_success(tmp / f"home-{kind}-{executor}", executor, wf, samples)
                rows.append((f"{kind} task, {executor}", values))
            if kind == "notebook":
                rows.append(
                    ("papermill.execute_notebook, this process", papermill_runs(notebook, tmp / "out.ipynb", samples))
                )
        wholes: list[tuple[str, list[float]]] = []
        repeat = 1 if args.quick else 3
        for kind in ("bash", "notebook"):
            for executor in ("local", "kernel-pool"):
                wf = chain(f"chain-{kind}-{executor}", kind, notebook)
                wholes.append(
                    (f"chain of 10 {kind} tasks, {executor}", whole_runs(tmp / wf.name, executor, wf, repeat))
                )
            wholes.append((f"10 {kind} runs one after another, no aiflow-nb", sequential(kind, notebook, tmp, repeat)))
        for executor in ("local", "kernel-pool"):
            wf = fan_out(f"fan-{executor}", notebook)
            walls = fan_out_runs(tmp / wf.name, executor, wf, repeat)
            wholes.append((f"fan-out of 20 notebook tasks, parallel 2, {executor}", walls))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(
        ["case", "runs", "wall s (best)", "median"],
        [[label, str(len(v)), f"{min(v):.2f}", f"{statistics.median(v):.2f}"] for label, v in wholes],
    )
    print()
    print_table(
        ["case", "runs", "p50 ms", "p99 ms", "min ms", "max ms"],
        [
            [
                label,
                str(len(v)),
                f"{statistics.median(v) * 1000:,.0f}",
                f"{percentile(v, 99) * 1000:,.0f}",
                f"{min(v) * 1000:,.0f}",
                f"{max(v) * 1000:,.0f}",
            ]
            for label, v in rows
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
