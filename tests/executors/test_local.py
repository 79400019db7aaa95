"""The local executor, through a real engine: papermill runs, processes, signals, limits."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from aiflow_nb import BashTask, Engine, NotebookTask, PythonTask, Task, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import ExecutorError
from aiflow_nb.events import keys
from aiflow_nb.executors import local, process
from aiflow_nb.executors.base import run_dir
from aiflow_nb.executors.local import LocalExecutor
from aiflow_nb.executors.runner import ALREADY_CLAIMED
from aiflow_nb.notebooks import write_code_notebook as write_notebook

# -- helpers -------------------------------------------------------------------------


def run_one(engine: Engine, wf: Workflow, timeout: float = 60) -> tuple[int, list[Any]]:
    """Submit, start one execution, wait until it ends; its id and task executions."""
    engine.submit(wf)
    ex_id = engine.start_execution(wf.name)
    engine.wait_for(lambda: engine.execution(ex_id).status.finished, timeout=timeout, what=f"execution {ex_id} to end")
    return ex_id, engine.task_executions(ex_id)


def status_history(engine: Engine, ex_id: int, task: str | None = None) -> list[tuple[str, str, int]]:
    """(task, status, attempt) of every task status event of an execution, in log order."""
    return [
        (e.value["task"], e.value["status"], e.value["attempt"])
        for e in engine.events(key=keys.TASK_STATUS)
        if e.value["execution_id"] == ex_id and (task is None or e.value["task"] == task)
    ]


def group_gone(pgid: int) -> bool:
    """True when no process (zombies aside, which hold nothing) is left in the group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return all(not process.alive(pid, None) for pid in group_members(pgid))


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def claimed_pid(run_dir: Path) -> tuple[int, str | None]:
    parsed = process.parse_identity((run_dir / "claim").read_text())
    assert parsed is not None
    return parsed


class FakeClock:
    """An injectable clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


# -- notebooks -----------------------------------------------------------------------


def test_notebook_task_runs_with_its_parameters_and_the_triggering_event(engine: Engine, tmp_path: Path) -> None:
    source = write_notebook(
        tmp_path / "greet.ipynb",
        "import json, sys\n"
        "print(f\"greeting={greeting} hour={aiflow_event['value']['hour']}\")\n"
        'print("a warning on stderr", file=sys.stderr)\n'
        'json.dump({"greeting": greeting, "event": aiflow_event, "seq": aiflow_seq,\n'
        '           "ids": [aiflow_execution_id, aiflow_task_execution_id]}, open("seen.json", "w"))',
        parameters='greeting = "default"\naiflow_event = None',
    )
    before = source.read_bytes()
    with Workflow("greet") as wf:
        NotebookTask("nb", notebook=source, parameters={"greeting": "hello"})
    wf.trigger_on("hour_complete")
    engine.submit(wf)
    offset = engine.send_event("hour_complete", {"hour": 10})

    [ex] = engine.wait_for(lambda: [e for e in engine.executions() if e.status.finished], timeout=90)
    [te] = engine.task_executions(ex.id)
    assert (ex.status, te.status, te.error) == (WorkflowStatus.SUCCESS, TaskStatus.SUCCESS, None)

    # The code saw the parameters, the event and the ids (it ran in the notebook's folder).
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["greeting"] == "hello"
    assert (seen["event"]["key"], seen["event"]["value"], seen["event"]["offset"]) == (
        "hour_complete",
        {"hour": 10},
        offset,
    )
    assert (seen["ids"], seen["seq"]) == ([ex.id, te.id], 1)

    # The executed notebook: papermill's injected cell right after the parameters cell, and the outputs.
    out = nbformat.read(engine.run_dir(te.id) / "output.ipynb", as_version=4)
    assert out.cells[0].metadata.tags == ["parameters"]
    injected = out.cells[1]
    assert "injected-parameters" in injected.metadata.tags
    assert 'greeting = "hello"' in injected.source and "aiflow_event = " in injected.source
    printed = "".join(o.get("text", "") for o in out.cells[2].outputs if o.get("name") == "stdout")
    assert "greeting=hello hour=10" in printed

    # The source notebook is never modified; the cell output went to log.txt.
    assert source.read_bytes() == before
    log_text = (engine.run_dir(te.id) / "log.txt").read_text()
    assert "greeting=hello hour=10" in log_text
    assert "a warning on stderr" in log_text


@pytest.mark.parametrize("parameters", [None, "n = 0"], ids=["no-parameters-cell", "parameters-cell"])
def test_failing_notebook_records_the_failing_cell(engine: Engine, tmp_path: Path, parameters: str | None) -> None:
    source = write_notebook(
        tmp_path / "fail.ipynb", "x = 1", "raise ValueError('boom')", "never = True", parameters=parameters
    )
    with Workflow("failing_nb") as wf:
        NotebookTask("nb", notebook=source, parameters={"n": 1})
    ex_id, [te] = run_one(engine, wf, timeout=90)

    assert engine.execution(ex_id).status is WorkflowStatus.FAILED
    assert te.status is TaskStatus.FAILED
    assert te.error is not None and te.error.endswith("raised ValueError: boom"), te.error
    # "cell N" is the execution count shown in output.ipynb, "index I" the cell in the user's notebook.
    count = int(te.error.split()[1])
    index = int(te.error.split("(index ")[1].split(")")[0])
    assert "raise ValueError" in nbformat.read(source, as_version=4).cells[index].source
    out = nbformat.read(engine.run_dir(te.id) / "output.ipynb", as_version=4)
    [failed] = [c for c in out.cells if c.cell_type == "code" and c.execution_count == count]
    assert "raise ValueError" in failed.source
    assert not any(c.source == "never = True" and c.execution_count for c in out.cells)  # nothing ran after it


# -- python and bash ------------------------------------------------------------------


def test_python_task_gets_kwargs_and_event_and_a_raising_one_fails_with_the_exception(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_tasks.py").write_text(
        "import json\n"
        "def record(path, aiflow_event):\n"
        "    json.dump({'event': aiflow_event}, open(path, 'w'))\n"
        "def explode(n):\n"
        "    print('about to fail', n)\n"
        "    raise ValueError(f'kaboom {n}')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # task processes inherit the engine's environment
    with Workflow("py") as wf:
        PythonTask("ok", callable="user_tasks:record", kwargs={"path": str(tmp_path / "ok.json")})
        PythonTask("bad", callable="user_tasks:explode", kwargs={"n": 7})
    ex_id, tes = run_one(engine, wf)
    by_task = {te.task: te for te in tes}

    assert json.loads((tmp_path / "ok.json").read_text()) == {"event": None}  # started by hand: no event
    assert by_task["ok"].status is TaskStatus.SUCCESS
    bad = by_task["bad"]
    assert (bad.status, bad.error) == (TaskStatus.FAILED, "ValueError: kaboom 7")
    log_text = (engine.run_dir(bad.id) / "log.txt").read_text()
    assert "about to fail 7" in log_text and "Traceback" in log_text
    assert engine.execution(ex_id).status is WorkflowStatus.FAILED


def test_bash_task_exiting_non_zero_fails_with_the_exit_code_and_logs_both_streams(engine: Engine) -> None:
    with Workflow("sh") as wf:
        BashTask("bad", command='echo "to stdout $AIFLOW_NB_TASK"; echo "to stderr" >&2; exit 3')
    ex_id, [te] = run_one(engine, wf)

    assert te.status is TaskStatus.FAILED
    assert te.error is not None and "exited with code 3" in te.error
    log_text = (engine.run_dir(te.id) / "log.txt").read_text()
    assert "to stdout bad" in log_text and "to stderr" in log_text
    assert engine.execution(ex_id).status is WorkflowStatus.FAILED


# -- retries and timeouts -----------------------------------------------------------


def test_task_failing_twice_then_succeeding_is_retried_up_to_max_retries(engine: Engine, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    with Workflow("flaky") as wf:
        BashTask(
            "flaky",
            command=f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; echo "try $n"; '
            '[ "$n" -ge 3 ] || { echo "failing on try $n" >&2; exit 1; }',
            max_retries=2,
        )
    ex_id, [te] = run_one(engine, wf)

    assert counter.read_text().strip() == "3"
    assert (te.status, te.attempt, te.seq) == (TaskStatus.SUCCESS, 3, 1)
    assert engine.execution(ex_id).status is WorkflowStatus.SUCCESS
    assert [(s, a) for _, s, a in status_history(engine, ex_id)] == [
        ("QUEUED", 1), ("RUNNING", 1), ("RETRYING", 1),
        ("QUEUED", 2), ("RUNNING", 2), ("RETRYING", 2),
        ("QUEUED", 3), ("RUNNING", 3), ("SUCCESS", 3),
    ]  # fmt: skip
    # Each attempt kept its own log.
    attempts = sorted(p.name for p in engine.run_dir(te.id).parent.iterdir())
    assert attempts == ["1", "2", "3"]
    assert "failing on try 1" in (engine.run_dir(te.id).parent / "1" / "log.txt").read_text()


def test_retries_run_out_and_the_task_fails(engine: Engine) -> None:
    with Workflow("always_bad") as wf:
        BashTask("bad", command="exit 5", max_retries=1)
    ex_id, [te] = run_one(engine, wf)
    assert (te.status, te.attempt) == (TaskStatus.FAILED, 2)
    assert te.error is not None and "exited with code 5" in te.error
    assert engine.execution(ex_id).status is WorkflowStatus.FAILED


def test_retry_waits_for_retry_delay_on_the_engine_clock(home: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    counter = tmp_path / "count"
    with Workflow("delayed") as wf:
        BashTask(
            "flaky",
            command=f'n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); echo $n > {counter}; [ "$n" -ge 2 ]',
            max_retries=1,
            retry_delay=timedelta(hours=1),
        )
    with Engine(home, stop_grace=2.0, clock=clock) as engine:
        engine.submit(wf)
        ex_id = engine.start_execution("delayed")
        [te] = engine.wait_for(
            lambda: [t for t in engine.task_executions(ex_id) if t.status is TaskStatus.RETRYING], what="RETRYING"
        )
        assert te.retry_at == clock.now + timedelta(hours=1)
        # Without the clock moving, no amount of scheduling starts attempt 2.
        for _ in range(20):
            engine.step()
        assert engine.task_execution(te.id).status is TaskStatus.RETRYING
        assert counter.read_text().strip() == "1"

        clock.now += timedelta(minutes=59)
        for _ in range(5):
            engine.step()
        assert engine.task_execution(te.id).status is TaskStatus.RETRYING

        clock.now += timedelta(minutes=1)
        engine.wait_for(lambda: engine.execution(ex_id).status.finished, what="the retry to end")
        done = engine.task_execution(te.id)
        assert (done.status, done.attempt) == (TaskStatus.SUCCESS, 2)
        assert counter.read_text().strip() == "2"


def test_task_past_its_timeout_is_stopped_and_fails(engine: Engine) -> None:
    with Workflow("slow") as wf:
        BashTask("slow", command="sleep 60", timeout=1)
    ex_id, [te] = run_one(engine, wf)

    assert te.status is TaskStatus.FAILED
    assert te.error is not None and "timed out" in te.error
    assert engine.execution(ex_id).status is WorkflowStatus.FAILED
    pgid, _ = claimed_pid(engine.run_dir(te.id))
    assert group_gone(pgid), "the timed-out task left processes behind"


# -- stopping ------------------------------------------------------------------------


def test_stop_sends_sigterm_first_so_a_task_can_clean_up(engine: Engine, tmp_path: Path) -> None:
    marker, started = tmp_path / "cleaned", tmp_path / "started"
    with Workflow("graceful") as wf:
        BashTask("svc", command=f"trap 'echo bye > {marker}; exit 0' TERM; touch {started}; sleep 60 & wait")
    engine.submit(wf)
    ex_id = engine.start_execution("graceful")
    engine.wait_for(started.exists, what="the task to start")
    engine.stop_task(ex_id, "svc")
    [te] = engine.wait_for(
        lambda: [t for t in engine.task_executions(ex_id) if t.status.finished], what="the task to stop"
    )
    assert te.status is TaskStatus.STOPPED
    assert marker.read_text() == "bye\n"
    assert [s for _, s, _ in status_history(engine, ex_id)][-2:] == ["STOPPING", "STOPPED"]


def test_stop_kills_a_task_that_ignores_sigterm_after_the_grace_period(engine: Engine, tmp_path: Path) -> None:
    started = tmp_path / "started"
    with Workflow("stubborn") as wf:
        BashTask("stubborn", command=f"trap '' TERM; touch {started}; sleep 60; echo survived > {tmp_path}/survived")
    engine.submit(wf)
    ex_id = engine.start_execution("stubborn")
    engine.wait_for(started.exists, what="the task to start")
    [te] = engine.task_executions(ex_id)
    pgid, _ = claimed_pid(engine.run_dir(te.id))
    engine.stop_execution(ex_id)

    # SIGTERM changes nothing: the task stays STOPPING until the grace period (2 s here) ends in SIGKILL.
    assert engine.task_execution(te.id).status is TaskStatus.STOPPING
    engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=30, what="STOPPED")
    assert engine.task_execution(te.id).status is TaskStatus.STOPPED
    assert engine.execution(ex_id).status is WorkflowStatus.STOPPED
    assert [s for _, s, _ in status_history(engine, ex_id)][-2:] == ["STOPPING", "STOPPED"]
    assert group_gone(pgid), "processes of the stopped task are still running"
    # Killed, not ended: neither the command nor its runner got to finish.
    assert not (tmp_path / "survived").exists()
    assert not (engine.run_dir(te.id) / "result.json").exists()


def test_stopping_a_notebook_task_leaves_no_kernel_behind(engine: Engine, tmp_path: Path) -> None:
    kernel_pid = tmp_path / "kernel.pid"
    source = write_notebook(
        tmp_path / "long.ipynb",
        f"import os, time\nopen({str(kernel_pid)!r}, 'w').write(str(os.getpid()))",
        "time.sleep(120)",
    )
    with Workflow("long_nb") as wf:
        NotebookTask("nb", notebook=source)
    engine.submit(wf)
    ex_id = engine.start_execution("long_nb")
    engine.wait_for(lambda: kernel_pid.exists() and kernel_pid.read_text(), timeout=90, what="the kernel to start")
    pid = int(kernel_pid.read_text())
    started = process.start_time(pid)
    try:
        engine.stop_task(ex_id, "nb")
        [te] = engine.wait_for(
            lambda: [t for t in engine.task_executions(ex_id) if t.status.finished], timeout=30, what="STOPPED"
        )
        assert te.status is TaskStatus.STOPPED
        engine.wait_for(lambda: not process.alive(pid, started), timeout=10, what="the kernel to end")
    finally:
        if process.alive(pid, started):
            os.kill(pid, signal.SIGKILL)


# -- the parallel limit ----------------------------------------------------------------


def test_max_parallel_bounds_how_many_tasks_run_at_once(home: Path) -> None:
    with Workflow("three") as wf:
        for name in ("a", "b", "c"):
            BashTask(name, command="sleep 0.2")
    with Engine(home, max_parallel=1, stop_grace=2.0) as engine:
        ex_id, tes = run_one(engine, wf)
        assert all(te.status is TaskStatus.SUCCESS for te in tes)
        running: set[str] = set()
        most = 0
        for task, status, _ in status_history(engine, ex_id):
            if status == "RUNNING":
                running.add(task)
            elif status in ("SUCCESS", "FAILED", "STOPPED"):
                running.discard(task)
            most = max(most, len(running))
        assert most == 1
        spans = sorted((te.start_time, te.end_time) for te in tes)
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))


# -- a launch happens once per task execution ----------------------------------------


def launch_request(tmp_path: Path, te_id: int = 1) -> dict[str, Any]:
    task = BashTask("append", command=f"echo $AIFLOW_NB_TASK_EXECUTION_ID >> {tmp_path / 'ran.txt'}")
    return request_for(task, te_id)


def request_for(task: Task, te_id: int = 1) -> dict[str, Any]:
    """The launch request of ``task``'s first run (task execution ``te_id``) in execution 1 of workflow w."""
    return {
        "task_execution_id": te_id,
        "attempt": 1,
        "execution_id": 1,
        "workflow": "w",
        "namespace": "default",
        "version": 1,
        "task": task.to_spec(),
        "seq": 1,
        "event": None,
    }


def drain(executor: LocalExecutor, timeout: float = 60) -> list[Any]:
    """Poll the executor until it watches no run; every outcome it reported."""
    outcomes: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        outcomes.extend(executor.poll())
        if executor.active() == 0:
            return outcomes
        assert time.monotonic() < deadline, "runs did not end in time"
        time.sleep(0.02)


def start_runner(folder: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "aiflow_nb.executors.runner", str(folder)], capture_output=True, timeout=60
    )


def test_launching_the_same_task_execution_twice_runs_it_once(home: Path, tmp_path: Path) -> None:
    executor = LocalExecutor(home)
    request = launch_request(tmp_path)
    executor.launch(request)
    executor.launch(request)  # e.g. after a crash between launch and its commit
    outcomes = drain(executor)
    assert [(o.task_execution_id, o.status) for o in outcomes] == [(1, TaskStatus.SUCCESS)]
    assert (tmp_path / "ran.txt").read_text() == "1\n"

    # Again, by a new executor (an engine restarted after the run ended): reported again, not run again.
    executor = LocalExecutor(home)
    executor.launch(request)
    outcomes = drain(executor)
    assert [(o.task_execution_id, o.status) for o in outcomes] == [(1, TaskStatus.SUCCESS)]
    assert (tmp_path / "ran.txt").read_text() == "1\n"


def test_a_runner_on_an_already_claimed_run_dir_exits_without_running(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "task.json").write_text(json.dumps(launch_request(tmp_path, te_id=9)))
    (folder / "claim").write_text(process.identity())
    before = (folder / "claim").read_text()

    done = start_runner(folder)
    assert done.returncode == ALREADY_CLAIMED
    assert not (tmp_path / "ran.txt").exists()
    assert not (folder / "result.json").exists()
    assert (folder / "claim").read_text() == before

    # The same folder unclaimed runs the task (so the check above is not vacuous).
    (folder / "claim").unlink()
    done = start_runner(folder)
    assert done.returncode == 0, done
    assert (tmp_path / "ran.txt").read_text() == "9\n"
    assert json.loads((folder / "result.json").read_text())["status"] == "SUCCESS"
    assert process.parse_identity((folder / "claim").read_text()) is not None


def recovered_before_claim(home: Path, tmp_path: Path, te_id: int) -> tuple[LocalExecutor, Path]:
    """An engine crashed after starting a runner that has not claimed its folder yet; a new one recovers it."""
    folder = run_dir(home, te_id, 1)
    folder.mkdir(parents=True)
    (folder / "task.json").write_text(json.dumps(launch_request(tmp_path, te_id=te_id)))
    executor = LocalExecutor(home)
    executor.recover(te_id, 1)
    return executor, folder


def test_a_recovered_run_is_watched_once_its_late_runner_claims_it(home: Path, tmp_path: Path) -> None:
    executor, folder = recovered_before_claim(home, tmp_path, te_id=4)
    assert executor.poll() == [] and executor.active() == 1  # within the claim grace: not lost
    assert start_runner(folder).returncode == 0
    assert [(o.task_execution_id, o.status) for o in drain(executor)] == [(4, TaskStatus.SUCCESS)]
    assert (tmp_path / "ran.txt").read_text() == "4\n"


def test_a_run_never_claimed_is_reported_lost_and_can_never_start_later(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "CLAIM_GRACE", 0.3)
    executor, folder = recovered_before_claim(home, tmp_path, te_id=5)
    outcomes = drain(executor)
    assert [(o.task_execution_id, o.status, o.error) for o in outcomes] == [
        (5, TaskStatus.FAILED, "the task process was lost")
    ]
    # Reported lost (and maybe retried as attempt 2): a runner that starts now must not run attempt 1.
    assert start_runner(folder).returncode == ALREADY_CLAIMED
    assert not (tmp_path / "ran.txt").exists()


def test_an_unknown_executor_option_is_refused_by_name(home: Path) -> None:
    with pytest.raises(ExecutorError, match=r"^local: unknown option\(s\) pool_size$"):
        Engine(home, executor="local", executor_options={"pool_size": 2})
    Engine(home, executor="local").close()  # the failed engine let go of the database
