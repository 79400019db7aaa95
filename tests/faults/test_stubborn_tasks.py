"""Stubborn tasks (issue 33): a STOP ends a task that ignores SIGTERM and the children it forked.

A bash, a Python and a notebook task each ignore SIGTERM and fork children
that ignore it too (``stubborn.py``; the bash task does the same with
``trap '' TERM``). A STOP must end every one of those processes after the
grace period, on every executor, and the run must end STOPPED once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, NotebookTask, PythonTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.executors import process
from aiflow_nb.notebooks import write_code_notebook
from tests.executors.test_local import group_members, status_history

pytestmark = pytest.mark.timeout(240)

HERE = Path(__file__).parent
GRACE = 2.0


def stubborn_workflow(kind: str, tmp_path: Path) -> Workflow:
    pids = str(tmp_path / "pids")
    with Workflow(f"stubborn_{kind}") as wf:
        if kind == "bash":
            BashTask(
                "t",
                command=(
                    "trap '' TERM; "
                    "( while true; do sleep 1; done ) & a=$!; "
                    "sleep 600 & b=$!; "
                    "for p in $$ $a $b; do echo $p $(cut -d' ' -f22 /proc/$p/stat); done > " + pids + ".tmp; "
                    f"mv {pids}.tmp {pids}; "
                    "while true; do sleep 1; done"
                ),
            )
        elif kind == "python":
            PythonTask("t", callable="stubborn:main", kwargs={"pids": pids}, cwd=str(HERE))
        else:
            notebook = write_code_notebook(
                tmp_path / "stubborn.ipynb",
                f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport stubborn\nstubborn.main({pids!r})",
            )
            # Streaming: the stop signals the runner alone, and the kernel is in a session of its own.
            NotebookTask("t", notebook=notebook, streaming=kind == "streaming-notebook")
    return wf


def recorded(pids: Path) -> list[tuple[int, str]]:
    return [(int(pid), started) for pid, started in (line.split() for line in pids.read_text().splitlines())]


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def live_members(pgid: int) -> list[int]:
    """Processes of the group that still run (a zombie has ended: it holds nothing)."""
    return [pid for pid in group_members(pgid) if process.alive(pid, None)]


@pytest.fixture(params=["local", "kernel-pool", "dask"])
def engine(request: pytest.FixtureRequest, home: Path) -> Iterator[Engine]:
    options: dict[str, object] = {}
    if request.param == "dask":
        options = {"address": request.getfixturevalue("dask_cluster")}
    eng = Engine(home, executor=request.param, executor_options=options, stop_grace=GRACE)
    yield eng
    eng.close()


@pytest.mark.parametrize("kind", ["bash", "python", "notebook", "streaming-notebook"])
def test_stop_ends_a_task_that_ignores_sigterm_and_its_children(engine: Engine, kind: str, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    wf = stubborn_workflow(kind, tmp_path)
    engine.submit(wf)
    ex = engine.start_execution(wf.name)
    procs: list[tuple[int, str]] = []
    try:
        engine.wait_for(pids.exists, timeout=120, what="the task and its children to start")
        procs = recorded(pids)
        assert len(procs) == 3 + (kind != "bash")  # the task (a kernel, a command), its children
        groups = {g for g in (pgid_of(pid) for pid, _ in procs) if g is not None}
        assert all(process.alive(pid, started) for pid, started in procs)
        engine.stop_execution(ex)
        # SIGTERM is ignored throughout: it is SIGKILL after the grace period that ends them.
        [te] = engine.wait_for(
            lambda: [t for t in engine.task_executions(ex) if t.status.finished], timeout=60, what="the run to end"
        )
        assert te.status is TaskStatus.STOPPED
        assert engine.execution(ex).status is WorkflowStatus.STOPPED
        statuses = [s for _, s, _ in status_history(engine, ex)]
        assert statuses.count("STOPPED") == 1 and statuses[-2:] == ["STOPPING", "STOPPED"], statuses
        # No orphan survives: none of the recorded processes, nothing left in their groups.
        engine.wait_for(
            lambda: not any(process.alive(pid, started) for pid, started in procs),
            timeout=15,
            what="every process of the task to end",
        )
        engine.wait_for(
            lambda: not any(live_members(g) for g in groups), timeout=15, what="the task's process groups to empty"
        )
        assert [s for _, s, _ in status_history(engine, ex)] == statuses  # and nothing after STOPPED
    finally:
        for pid, started in procs:
            if process.alive(pid, started):
                os.kill(pid, signal.SIGKILL)
