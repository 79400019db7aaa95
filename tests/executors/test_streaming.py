"""Streaming tasks in the local executor: heartbeats, a graceful STOP, RESTART."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from aiflow_nb import BashTask, Engine, NotebookTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.events import keys
from aiflow_nb.notebooks import write_code_notebook
from tests.executors.test_local import claimed_pid, group_gone, run_one

#: A streaming notebook: one step per loop, each logged as begun and ended,
#: until aiflow-nb asks it to stop; then a last cell records a clean exit.
STREAM_CELLS = (
    "import time\nfrom aiflow_nb import stop_requested",
    "step = 0\n"
    "while not stop_requested():\n"
    "    step += 1\n"
    "    with open(steps, 'a') as f: f.write(f'begin {step}\\n')\n"
    "    time.sleep(step_seconds)\n"
    "    with open(steps, 'a') as f: f.write(f'end {step}\\n')",
    "open(steps, 'a').write('clean exit\\n')",
)


def stream_notebook(tmp_path: Path) -> Path:
    return write_code_notebook(tmp_path / "stream.ipynb", *STREAM_CELLS, parameters="steps = ''\nstep_seconds = 0.5")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_stop_lets_a_streaming_notebook_finish_its_step_and_records_stopped(engine: Engine, tmp_path: Path) -> None:
    steps = tmp_path / "steps.txt"
    with Workflow("stream") as wf:
        NotebookTask("stream", notebook=stream_notebook(tmp_path), parameters={"steps": str(steps)}, streaming=True)
    engine.submit(wf)
    ex_id = engine.start_execution("stream")
    engine.wait_for(lambda: "end 1" in lines(steps), timeout=90, what="the first step to end")

    engine.stop_task(ex_id, "stream")
    [te] = engine.wait_for(
        lambda: [t for t in engine.task_executions(ex_id) if t.status.finished], timeout=30, what="STOPPED"
    )

    assert te.status is TaskStatus.STOPPED and te.error is None
    done = lines(steps)
    # The step under way when the stop came ended, no new one began, and the cells after the loop ran.
    assert done[-1] == "clean exit"
    begun = [x for x in done if x.startswith("begin")]
    assert [f"end {x.split()[1]}" for x in begun] == [x for x in done if x.startswith("end")]
    # A stopped streaming task does not end its execution: a stream is never "done".
    assert engine.execution(ex_id).status is WorkflowStatus.RUNNING
    assert not [e for e in engine.events(key=keys.TASK_FAILED)]


def test_a_streaming_task_that_ignores_the_stop_is_killed_after_the_grace_period(
    engine: Engine, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    with Workflow("deaf") as wf:
        BashTask("deaf", command=f"trap '' TERM; touch {started}; sleep 60", streaming=True)
    engine.submit(wf)
    ex_id = engine.start_execution("deaf")
    engine.wait_for(started.exists, what="the task to start")
    [te] = engine.task_executions(ex_id)
    pgid, _ = claimed_pid(engine.run_dir(te.id))

    engine.stop_task(ex_id, "deaf")
    engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=30, what="STOPPED")

    assert engine.task_execution(te.id).status is TaskStatus.STOPPED
    assert group_gone(pgid)


def test_restart_of_a_streaming_notebook_stops_it_gracefully_and_starts_seq_2(engine: Engine, tmp_path: Path) -> None:
    steps = tmp_path / "steps.txt"
    with Workflow("stream") as wf:
        stream = NotebookTask(
            "stream", notebook=stream_notebook(tmp_path), parameters={"steps": str(steps)}, streaming=True
        )
        stream.action_on_event_received("RESTART", "model_drift")
    engine.submit(wf)
    ex_id = engine.start_execution("stream")
    engine.wait_for(lambda: "end 1" in lines(steps), timeout=90, what="the first step to end")

    engine.send_event("model_drift")
    engine.wait_for(
        lambda: [t.status for t in engine.task_executions(ex_id)] == [TaskStatus.STOPPED, TaskStatus.RUNNING],
        timeout=60,
        what="seq 1 STOPPED and seq 2 RUNNING",
    )
    first, second = engine.task_executions(ex_id)
    assert (first.seq, second.seq) == (1, 2)
    # seq 2 starts from step 1 again only after seq 1 ended cleanly.
    engine.wait_for(lambda: lines(steps).count("end 1") == 2, timeout=90, what="seq 2 to run a step")
    done = lines(steps)
    assert done.index("clean exit") < len(done) - 1 - done[::-1].index("begin 1")
    engine.stop_execution(ex_id)
    engine.wait_for(lambda: engine.execution(ex_id).status.finished, timeout=30, what="the execution to stop")


def test_a_task_whose_process_stops_beating_fails_and_is_an_event(home: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    with Workflow("frozen") as wf:
        BashTask("frozen", command=f"touch {started}; sleep 60", streaming=True, heartbeat_timeout=2)
    engine = Engine(home, stop_grace=2.0)
    try:
        engine.submit(wf)
        ex_id = engine.start_execution("frozen")
        engine.wait_for(started.exists, what="the task to start")
        [te] = engine.task_executions(ex_id)
        pgid, _ = claimed_pid(engine.run_dir(te.id))
        # Freeze the task process (as a hung machine or a debugger would): it is alive but silent.
        os.kill(pgid, signal.SIGSTOP)

        engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=30, what="FAILED")
        te = engine.task_execution(te.id)
        assert te.status is TaskStatus.FAILED
        assert te.error is not None and "no heartbeat" in te.error
        [failed] = engine.events(key=keys.TASK_FAILED)
        assert failed.value["task"] == "frozen" and "no heartbeat" in failed.value["error"]
        engine.wait_for(lambda: group_gone(pgid), timeout=10, what="the frozen group to be killed")
    finally:
        engine.close()


def test_a_task_running_longer_than_its_heartbeat_timeout_is_not_killed(engine: Engine) -> None:
    with Workflow("slow_but_alive") as wf:
        BashTask("slow", command="sleep 3", heartbeat_timeout=1)
    _, [te] = run_one(engine, wf)
    assert te.status is TaskStatus.SUCCESS, te.error
