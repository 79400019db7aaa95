"""A launch is committed RUNNING before it is sent: a crash on either side of the send runs it once."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiflow_nb import Engine, TaskStatus, WorkflowStatus

#: The engine process: commits a launch, then dies by SIGKILL before (or just after) sending it.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from aiflow_nb import BashTask, Engine, Workflow

    home, out, when = sys.argv[1:4]
    engine = Engine(home)
    with Workflow("w") as wf:
        BashTask("t", command=f"echo ran >> {out}; sleep 0.5")
    wf.trigger_on("go")
    engine.submit(wf)
    send = engine.executor.launch

    def launch(request):
        if when == "after":
            send(request)  # the runner starts (and claims the run) on its own
        os.kill(os.getpid(), signal.SIGKILL)

    engine.executor.launch = launch
    engine.send_event("go")
    """
)


@pytest.mark.parametrize("when", ["before", "after"], ids=["killed before the send", "killed right after it"])
def test_a_launch_cut_short_by_a_crash_runs_exactly_once_after_the_restart(
    home: Path, tmp_path: Path, when: str
) -> None:
    out = tmp_path / "ran.txt"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), shlex.quote(str(out)), when], capture_output=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    engine = Engine(home)
    try:
        (ex,) = engine.executions(workflow="w")
        (te,) = engine.task_executions(ex.id)
        assert te.status is TaskStatus.RUNNING  # committed so, with its launch still in the outbox
        engine.wait_for(lambda: engine.execution(ex.id).status.finished, what="the execution to end")
        assert engine.execution(ex.id).status is WorkflowStatus.SUCCESS
        (te,) = engine.task_executions(ex.id)
        assert (te.status, te.attempt) == (TaskStatus.SUCCESS, 1)
        assert out.read_text() == "ran\n"
    finally:
        engine.close()
