"""Benchmark: event to task SUCCESS, chains and fan-outs on each executor, next to papermill.

    .venv/bin/python benchmarks/bench_executors.py           # 100 events per case
    .venv/bin/python benchmarks/bench_executors.py --quick   # 10 per case
    .venv/bin/python benchmarks/bench_executors.py --executors kernel-pool,dask

The ``dask`` executor runs on a ``distributed.LocalCluster`` this script
starts on the same machine (2 worker processes, 1 thread each): what it
adds to a run (the scheduler's round trips, the result coming back), not
what a bigger cluster gains.

An engine (its loop in a thread, as in the service) on a fresh home in a
temporary folder; a workflow triggered by an event runs one task: a bash
``true``, or a one-cell notebook (``x = 1 + 1``).  Each event is sent once
the previous execution has ended and the pool has had time to refill (1 s
after a bash task, 2.5 s after a notebook); latency runs from just before
``send_event`` to the commit that holds the execution's SUCCESS, as a
WebSocket subscriber would see it (the engine's commit listener).  Next to them, ``papermill.execute_notebook``
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
import threading
import time
from pathlib import Path
from typing import Any

from _common import papermill_once, papermill_runs, print_machine, print_table, record, verdict

from aiflow_nb.startup import skip_slow_optional_imports

skip_slow_optional_imports()


from aiflow_nb import BashTask, Engine, NotebookTask, Workflow, WorkflowStatus  # noqa: E402
from aiflow_nb.events import keys  # noqa: E402
from aiflow_nb.notebooks import write_code_notebook  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


#: The LocalCluster's scheduler, when the dask executor is measured.
DASK_ADDRESS: str | None = None


def pool_options(executor: str, pool_size: int) -> dict[str, Any]:
    if executor == "dask":
        return {"address": DASK_ADDRESS}
    # The python3 pool from the start: otherwise it starts with the first notebook task, which runs cold.
    return {"pool_size": pool_size, "kernels": ["python3"]} if executor == "kernel-pool" else {}


class Commits:
    """When each commit of an engine became visible: its listener's calls, (time, latest offset).

    A status is timed by the commit that appended its status event, as a
    WebSocket subscriber would see it, without this process querying the
    engine's database while the run is on (which would hold its lock).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.seen: list[tuple[float, int]] = []
        self.changed = threading.Event()
        engine.add_listener(self._on_commit)

    def _on_commit(self, latest: int) -> None:
        self.seen.append((time.perf_counter(), latest))
        self.changed.set()

    def wait_finished(self, execution_id: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.engine.execution(execution_id).status.finished:
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_id} did not end in {timeout:g} s")
            self.changed.wait(0.5)
            self.changed.clear()

    def finished_at(self, execution_id: int, since: int) -> float:
        """When the commit holding the execution's final status event was made."""
        for event in self.engine.events(since=since, key=keys.EXECUTION_STATUS):
            if event.execution_id == execution_id and event.value["status"] in ("SUCCESS", "FAILED", "STOPPED"):
                offset = event.offset
                assert offset is not None  # read from the log
                return next(t for t, latest in self.seen if latest >= offset)
        raise AssertionError(f"no final status event for execution {execution_id}")


def event_to_success(home: Path, executor: str, wf: Workflow, samples: int, gap: float) -> list[float]:
    """Event to SUCCESS of ``samples`` events, one at a time, ``gap`` s apart (the pool refills)."""
    engine = Engine(home, executor=executor, executor_options=pool_options(executor, 1)).start()
    try:
        engine.submit(wf)
        commits = Commits(engine)
        time.sleep(3.0)  # spares started and their kernels ready
        latencies = []
        for i in range(samples + 1):
            start = time.perf_counter()
            offset = engine.send_event(f"go.{wf.name}", i)
            ex = engine.executions(workflow=wf.name, limit=1)[-1]
            commits.wait_finished(ex.id)
            assert engine.execution(ex.id).status is WorkflowStatus.SUCCESS, engine.task_executions(ex.id)
            if i:  # the first one warms this process's caches
                latencies.append(commits.finished_at(ex.id, offset) - start)
            time.sleep(gap)
        return latencies
    finally:
        engine.close()


def whole_runs(home: Path, executor: str, wf: Workflow, repeat: int, pool_size: int) -> list[float]:
    """Wall time of ``repeat`` executions of ``wf``, from the start to its SUCCESS."""
    engine = Engine(home, executor=executor, executor_options=pool_options(executor, pool_size)).start()
    try:
        engine.submit(wf)
        commits = Commits(engine)
        time.sleep(3.0 + pool_size)  # the spares started and their kernels ready
        walls = []
        for _ in range(repeat):
            since = engine.log.latest_offset()
            start = time.perf_counter()
            ex = engine.start_execution(wf.name)
            commits.wait_finished(ex)
            assert engine.execution(ex).status is WorkflowStatus.SUCCESS, engine.task_executions(ex)
            walls.append(commits.finished_at(ex, since) - start)
            time.sleep(3.0 + pool_size)
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


def sequential(kind: str, notebook: Path, tmp: Path, repeat: int) -> list[float]:
    """The alternative to a chain: the 10 runs one after another, papermill or bash itself."""
    walls = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(10):
            if kind == "bash":
                subprocess.run(["/bin/bash", "-c", "true"], check=True)
            else:
                papermill_once(notebook, tmp / "seq.ipynb")
        walls.append(time.perf_counter() - start)
    return walls


def fan_out_runs(home: Path, executor: str, wf: Workflow, repeat: int, pool_size: int) -> list[float]:
    """Wall time from the event that starts all 20 tasks to the last SUCCESS, 2 at a time."""
    options = pool_options(executor, pool_size)
    engine = Engine(home, executor=executor, executor_options=options, max_parallel=2).start()
    try:
        engine.submit(wf)
        commits = Commits(engine)
        time.sleep(3.0 + pool_size)
        walls = []
        for _ in range(repeat):
            ex = engine.start_execution(wf.name)
            since = engine.log.latest_offset()
            start = time.perf_counter()
            engine.send_event(f"fan.{wf.name}")
            commits.wait_finished(ex)
            tes = engine.task_executions(ex)
            failed = [(t.task, t.status.value, t.error) for t in tes if t.status.value != "SUCCESS"]
            assert len(tes) == 20 and not failed, f"{executor}: {len(tes)} task executions, not successful: {failed}"
            walls.append(commits.finished_at(ex, since) - start)
            time.sleep(3.0 + pool_size)
        return walls
    finally:
        engine.close()


#: Targets of this machine (2 cores): event to SUCCESS p50, and chain wall times, in seconds.
TARGETS = {"bash": 0.025, "notebook": 0.050, "chain bash": 0.250, "chain notebook": 1.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 events per case, one chain and fan-out each")
    parser.add_argument("--events", type=int, help="events per latency case (default 100)")
    parser.add_argument(
        "--pool-size", type=int, default=10, help="kernel-pool spares per pool for the chains and fan-outs (default 10)"
    )
    parser.add_argument(
        "--executors", default="local,kernel-pool,dask", help="comma-separated (default local,kernel-pool,dask)"
    )
    parser.add_argument(
        "--cases", default="latency,chains,fan-out", help="comma-separated (default latency,chains,fan-out)"
    )
    args = parser.parse_args(argv)
    samples = args.events or (10 if args.quick else 100)
    repeat = 1 if args.quick else 3
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = cases - {"latency", "chains", "fan-out"}
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    cluster = None
    if "dask" in executors:
        from distributed import LocalCluster

        global DASK_ADDRESS
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        DASK_ADDRESS = cluster.scheduler_address

    print(f"aiflow-nb benchmark: executors (kernel-pool: pool_size 1 for latency, {args.pool_size} for chains)")
    print_machine()
    tmp = Path(tempfile.mkdtemp(prefix="aiflow-bench-executors-"))
    notebook = write_code_notebook(tmp / "one_cell.ipynb", "x = 1 + 1")
    rows: list[tuple[str, list[float], str]] = []
    wholes: list[tuple[str, list[float], str]] = []

    def measured(table: list[tuple[str, list[float], str]], label: str, values: list[float], name: str) -> None:
        # Shown at once: a case that fails later must not cost the figures of the others.
        table.append((label, values, name))
        p50, p99 = statistics.median(values), percentile(values, 99)
        print(f"  {label}: {len(values)} runs, p50 {p50:.3f} s, p99 {p99:.3f} s, best {min(values):.3f} s", flush=True)

    try:
        for kind in ("bash", "notebook") if "latency" in cases else ():
            for executor in executors:
                with Workflow(f"{kind}-{executor}") as wf:
                    if kind == "bash":
                        BashTask("t", command="true")
                    else:
                        NotebookTask("t", notebook=notebook)
                wf.trigger_on(f"go.{wf.name}")
                # Time for the used spare to be replaced (REFILL_DELAY, then a start: a kernel takes ~1 s).
                gap = 1.0 if kind == "bash" else 2.5
                values = event_to_success(tmp / f"home-{kind}-{executor}", executor, wf, samples, gap)
                measured(rows, f"{kind} task, {executor}", values, kind if executor == "kernel-pool" else "")
            if kind == "notebook":
                runs = papermill_runs(notebook, tmp / "out.ipynb", samples)
                measured(rows, "papermill.execute_notebook, this process", runs, "")
        for kind in ("bash", "notebook") if "chains" in cases else ():
            for executor in executors:
                wf = chain(f"chain-{kind}-{executor}", kind, notebook)
                walls = whole_runs(tmp / wf.name, executor, wf, repeat, args.pool_size)
                target_name = f"chain {kind}" if executor == "kernel-pool" else ""
                measured(wholes, f"chain of 10 {kind} tasks, {executor}", walls, target_name)
            walls = sequential(kind, notebook, tmp, repeat)
            measured(wholes, f"{kind}: 10 runs one after another, no aiflow-nb", walls, "")
        for executor in executors if "fan-out" in cases else ():
            wf = fan_out(f"fan-{executor}", notebook)
            walls = fan_out_runs(tmp / wf.name, executor, wf, repeat, args.pool_size)
            measured(wholes, f"fan-out of 20 notebook tasks, parallel 2, {executor}", walls, "")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if cluster is not None:
            cluster.close()

    def target(name: str, value: float) -> list[str]:
        if not name:
            return ["-", "-"]
        limit = TARGETS[name]
        shown = f"<= {limit * 1000:,.0f} ms" if limit < 1 else f"<= {limit:g} s"
        return [shown, verdict(value, limit, higher_is_better=False)]

    print_table(
        ["case", "runs", "wall s (best)", "median", "target", ""],
        [
            [label, str(len(v)), f"{min(v):.2f}", f"{statistics.median(v):.2f}", *target(name, statistics.median(v))]
            for label, v, name in wholes
        ],
    )
    print()
    latency_rows = []
    for label, v, name in rows:
        p50, p99 = statistics.median(v), percentile(v, 99)
        latency_rows.append(
            [
                label,
                str(len(v)),
                f"{p50 * 1000:,.0f}",
                f"{p99 * 1000:,.0f}",
                f"{p99 / p50:.1f}",
                f"{min(v) * 1000:,.0f}",
                f"{max(v) * 1000:,.0f}",
                *target(name, p50),
            ]
        )
        record(f"event to SUCCESS p50, {label}", p50 * 1000, "ms", " ".join(target(name, p50)))
    print_table(["case", "runs", "p50 ms", "p99 ms", "p99/p50", "min ms", "max ms", "target", ""], latency_rows)
    p50s = {label: statistics.median(v) for label, v, _ in rows}
    papermill_p50 = p50s.get("papermill.execute_notebook, this process")
    for executor in executors:
        if papermill_p50 is None:
            break
        ratio = papermill_p50 / p50s[f"notebook task, {executor}"]
        print(f"notebook task on {executor} vs papermill in this process: {ratio:.1f} x faster")
    for label, v, name in wholes:
        record(label, statistics.median(v), "s", " ".join(target(name, statistics.median(v))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
