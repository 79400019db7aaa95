"""An operator from another package (the example ``ticker``: an external job with its own stop command)
run by the engine: every rule kind, failures, STOP, RESTART, a re-attached job, the dask executor."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiflow_nb_example_ops.ops import TickerTask

from aiflow_nb import AllOf, Engine, EventCondition, Task, TaskStatus, Workflow
from aiflow_nb.executors import process
from aiflow_nb.executors.runner import HANDLE_FILE
from tests.conftest import RunningService
from tests.executors.test_local import claimed_pid

pytestmark = pytest.mark.timeout(240)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def job_pid(run_dir: Path) -> int:
    import json

    return int(json.loads((run_dir / HANDLE_FILE).read_text())["pid"])


def test_event_status_and_condition_rules_start_operator_tasks_once_each(engine: Engine, tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    with Workflow("ticks") as wf:
        ta = TickerTask("a", out=str(a), ticks=3)
        ta.action_on_event_received("START", "go")
        TickerTask("b", out=str(b), ticks=2).start_after(ta)
        Task("c", operator="ticker", params={"out": str(c), "ticks": 1}).action_on_condition(
            "START", AllOf([EventCondition("x"), EventCondition("y")])
        )
    engine.submit(wf)
    ex = engine.start_execution("ticks")
    engine.send_event("go")
    engine.send_event("x")
    engine.send_event("y")
    engine.wait_for(
        lambda: (
            {t.task: t.status for t in engine.task_executions(ex)}
            == {"a": TaskStatus.SUCCESS, "b": TaskStatus.SUCCESS, "c": TaskStatus.SUCCESS}
        ),
        timeout=120,
        what="a, b and c to succeed",
    )
    assert [x for x in lines(a) if not x.startswith("start")] == ["tick 1", "tick 2", "tick 3"]
    assert [x for x in lines(b) if not x.startswith("start")] == ["tick 1", "tick 2"]
    assert len([x for x in lines(c) if x.startswith("start")]) == 1
    te_a = next(t for t in engine.task_executions(ex) if t.task == "a")
    log = engine.task_log(te_a.id)
    assert "ticker job started as pid" in log and "writing to" in log  # the operator's line and the job's


def test_a_failing_job_and_a_job_that_cannot_start_are_failed_with_their_errors(engine: Engine, tmp_path: Path) -> None:
    with Workflow("bad") as wf:
        Task("fails", operator="ticker", params={"out": str(tmp_path / "f"), "ticks": 5, "fail_at": 2})
        Task("nostart", operator="ticker", params={"out": str(tmp_path / "missing" / "f")})
    engine.submit(wf)
    ex = engine.start_execution("bad")
    engine.wait_for(lambda: engine.execution(ex).status.finished, timeout=120, what="the execution to end")
    errors = {t.task: (t.status, t.error) for t in engine.task_executions(ex)}
    assert errors["fails"] == (TaskStatus.FAILED, "ticker failed at tick 2")
    status, error = errors["nostart"]
    assert status is TaskStatus.FAILED
    assert error == f"the ticker cannot start: folder {str(tmp_path / 'missing')!r} does not exist"


@pytest.fixture
def patient(home: Path) -> Iterator[Engine]:
    """An engine whose stops wait long enough for a stop command to start on a busy machine."""
    eng = Engine(home, stop_grace=60.0)
    yield eng
    eng.close()


def test_stop_runs_the_jobs_own_stop_command(patient: Engine, tmp_path: Path) -> None:
    engine = patient
    out = tmp_path / "out"
    with Workflow("stream") as wf:
        TickerTask("t", out=str(out), streaming=True)
    engine.submit(wf)
    ex = engine.start_execution("stream")
    engine.wait_for(lambda: "tick 2" in lines(out), what="two ticks")
    [te] = engine.task_executions(ex)
    pid = job_pid(engine.run_dir(te.id))
    engine.stop_task(ex, "t")
    engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=60, what="STOPPED")
    assert engine.task_execution(te.id).status is TaskStatus.STOPPED
    assert lines(out)[-1] == "stopped"  # it ended through its stop command, not a signal
    assert process.start_time(pid) is None


def test_restart_stops_the_job_and_starts_seq_2(patient: Engine, tmp_path: Path) -> None:
    engine = patient
    out = tmp_path / "out"
    with Workflow("stream") as wf:
        TickerTask("t", out=str(out), streaming=True).action_on_event_received("RESTART", "model_drift")
    engine.submit(wf)
    ex = engine.start_execution("stream")
    engine.wait_for(lambda: "tick 1" in lines(out), what="a tick")
    engine.send_event("model_drift")
    engine.wait_for(
        lambda: (
            [t.status for t in engine.task_executions(ex)] == [TaskStatus.STOPPED, TaskStatus.RUNNING]
            and lines(out).count("stopped") == 1
            and len([x for x in lines(out) if x.startswith("start")]) == 2
        ),
        timeout=60,
        what="seq 1 STOPPED and seq 2 RUNNING",
    )
    first, second = engine.task_executions(ex)
    assert (first.seq, second.seq) == (1, 2)
    engine.stop_task(ex, "t")
    engine.wait_for(lambda: engine.task_execution(second.id).status.finished, timeout=60, what="seq 2 STOPPED")


@pytest.fixture
def service_home(home: Path) -> Iterator[RunningService]:
    running = RunningService(home)
    yield running
    running.stop()


@pytest.mark.parametrize("runner_too", [False, True], ids=["service", "service-and-runner"])
def test_a_job_survives_a_service_sigkill_and_is_watched_again(
    service_home: RunningService, tmp_path: Path, runner_too: bool
) -> None:
    out = tmp_path / "out"
    service = service_home.start()
    client = service.client()
    with Workflow("stream") as wf:
        TickerTask("t", out=str(out), streaming=True, interval=0.05)
    client.submit(wf)
    ex = client.start_execution("stream")
    _wait(lambda: "tick 1" in lines(out), "a tick")
    [te] = client.task_executions(ex)
    run_dir = service.home / "runs" / str(te.id) / "1"
    pid = job_pid(run_dir)
    runner, _ = claimed_pid(run_dir)

    service.kill(signal.SIGKILL)
    if runner_too:  # the job's watcher dies with it: a new runner must find the job through its handle
        os.killpg(runner, signal.SIGKILL)
        _wait(lambda: process.start_time(runner) is None, "the runner to be gone")
    ticks = len(lines(out))
    _wait(lambda: len(lines(out)) > ticks, "the job to tick on without a service")

    service = service_home.start()
    client = service.client()
    _wait(lambda: claimed_pid(run_dir)[0] != runner or not runner_too, "a runner to take the run over")
    assert client.task_execution(te.id).status is TaskStatus.RUNNING
    client.stop_task(ex, "t")
    _wait(lambda: client.task_execution(te.id).status.finished, "STOPPED", timeout=60)
    assert client.task_execution(te.id).status is TaskStatus.STOPPED
    assert [x for x in lines(out) if x.startswith("start")] == [f"start {pid}"]  # started once, ever
    assert lines(out)[-1] == "stopped"
    if runner_too:
        assert "watching the ticker job again" in client.task_log(te.id)


def _wait(predicate, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_operator_tasks_run_and_stop_on_the_dask_executor(home: Path, dask_cluster: str, tmp_path: Path) -> None:
    done, stream = tmp_path / "done", tmp_path / "stream"
    engine = Engine(home, executor="dask", executor_options={"address": dask_cluster}, stop_grace=5.0)
    try:
        with Workflow("on-dask") as wf:
            TickerTask("once", out=str(done), ticks=2)
            TickerTask("stream", out=str(stream), streaming=True)
        engine.submit(wf)
        ex = engine.start_execution("on-dask")
        engine.wait_for(
            lambda: any(t.task == "once" and t.status is TaskStatus.SUCCESS for t in engine.task_executions(ex)),
            timeout=120,
            what="the batch ticker to succeed on a worker",
        )
        engine.wait_for(lambda: "tick 1" in lines(stream), timeout=60, what="the stream to tick")
        engine.stop_task(ex, "stream")
        engine.wait_for(
            lambda: any(t.task == "stream" and t.status.finished for t in engine.task_executions(ex)),
            timeout=60,
            what="the stream to stop",
        )
        statuses = {t.task: t.status for t in engine.task_executions(ex)}
        assert statuses == {"once": TaskStatus.SUCCESS, "stream": TaskStatus.STOPPED}
        assert lines(done)[1:] == ["tick 1", "tick 2"]
        assert lines(stream)[-1] == "stopped"
    finally:
        engine.close()


def test_a_job_that_outlasts_the_stop_grace_is_killed_with_its_runner(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    engine = Engine(home, stop_grace=0.5)
    try:
        with Workflow("stream") as wf:
            TickerTask("t", out=str(out), streaming=True)
        engine.submit(wf)
        ex = engine.start_execution("stream")
        engine.wait_for(lambda: "tick 1" in lines(out), what="a tick")
        [te] = engine.task_executions(ex)
        run_dir = engine.run_dir(te.id)
        pid, runner = job_pid(run_dir), claimed_pid(run_dir)[0]
        os.kill(runner, signal.SIGSTOP)  # the runner cannot run the job's stop command in time
        engine.stop_task(ex, "t")
        engine.wait_for(lambda: engine.task_execution(te.id).status.finished, timeout=60, what="STOPPED")
        assert engine.task_execution(te.id).status is TaskStatus.STOPPED
        engine.wait_for(lambda: process.start_time(pid) is None, what="the job to be gone")
        assert "stopped" not in lines(out)  # killed, not stopped by its command
    finally:
        engine.close()
