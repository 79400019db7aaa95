"""Benchmark: event to task SUCCESS on the ``local`` and ``kernel-pool`` executors, next to papermill.

    .venv/bin/python benchmarks/bench_executors.py           # 20 events per case (~2 min)
    .venv/bin/python benchmarks/bench_executors.py --quick   # 5 per case

An engine (its loop in a thread, as in the service) on a fresh home in a
temporary folder; a workflow triggered by an event runs one task: a bash
``true``, or a one-cell notebook (``x = 1 + 1``).  Each event is sent once
the previous execution has ended and the pool has had a second to refill;
latency runs from ``send_event`` to the execution's SUCCESS as this process
sees it (polled every 2 ms).  Next to them, ``papermill.execute_notebook``
of the same notebook in this process (``shutdown_kernel="immediate"``).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import print_machine, print_table

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()

import papermill  # noqa: E402

from aiflow_nb import BashTask, Engine, NotebookTask, Workflow, WorkflowStatus  # noqa: E402
from aiflow_nb.notebooks import write_code_notebook  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def event_to_success(home: Path, executor: str, wf: Workflow, samples: int) -> list[float]:
    engine = Engine(home, executor=executor).start()
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


def papermill_runs(notebook: Path, out: Path, samples: int) -> list[float]:
    latencies = []
    for _ in range(samples + 1):
        start = time.perf_counter()
        papermill.execute_notebook(
            str(notebook), str(out), kernel_name="python3", progress_bar=False, shutdown_kernel="immediate"
        )
        latencies.append(time.perf_counter() - start)
    return latencies[1:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 events per case")
    args = parser.parse_args(argv)
    samples = 5 if args.quick else 20

    print("aiflow-nb benchmark: event to SUCCESS per executor")
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
