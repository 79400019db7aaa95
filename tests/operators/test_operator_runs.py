"""An operator from another package (the example ``ticker``: an external job with its own stop command)
run by the engine: every rule kind, failures, STOP, RESTART, a re-attached job, the dask executor."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiflow_nb_example_ops.ops import TickerTask

from aiflow_nb import AllOf, Engine, EventCondition, Task, TaskStatus, Workflow
from aiflow_nb.executors import process
from aiflow_nb.executors.base import run_dir
from aiflow_nb.executors.local import LocalExecutor
from aiflow_nb.executors.runner import HANDLE_FILE
from tests.conftest import RunningService
from tests.executors.test_local import claimed_pid, drain, group_members, request_for, status_history

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


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def live_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run (a zombie holds nothing)."""
    return [pid for pid in group_members(pgid) if process.alive(pid, None)]


def ticking_stream(engine: Engine, out: Path) -> tuple[int, int, int, str | None]:
    """A streaming ticker run until its first tick: (execution, job pid, its runner's pid, the job's start time)."""
    with Workflow("stream") as wf:
        TickerTask("t", out=str(out), streaming=True)
    engine.submit(wf)
    ex = engine.start_execution("stream")
    engine.wait_for(lambda: "tick 1" in lines(out), timeout=120, what="a tick")
    pid = int(lines(out)[0].split()[1])  # "start <pid>": the job, in a session of its own
    return ex, pid, parent_of(pid), process.start_time(pid)


def ended_run(engine: Engine, ex: int) -> Any:
    [te] = engine.wait_for(
        lambda: [t for t in engine.task_executions(ex) if t.status.finished], timeout=60, what="the run to end"
    )
    return te


@pytest.fixture(params=["local", "dask"])
def impatient(request: pytest.FixtureRequest, home: Path) -> Iterator[Engine]:
    """An engine whose stops give a job 3 s: less than its stop command takes with a frozen runner."""
    options: dict[str, object] = {}
    if request.param == "dask":
        options = {"address": request.getfixturevalue("dask_cluster")}
    eng = Engine(home, executor=request.param, executor_options=options, stop_grace=3.0)
    yield eng
    eng.close()


@pytest.mark.parametrize("runner_dies", [False, True], ids=["runner-frozen", "runner-killed-while-stopping"])
def test_a_job_that_outlasts_the_stop_grace_is_killed_as_a_group(
    impatient: Engine, tmp_path: Path, runner_dies: bool
) -> None:
    engine, out = impatient, tmp_path / "out"
    ex, pid, runner, started = ticking_stream(engine, out)
    folder = Path(os.readlink(f"/proc/{runner}/cwd"))  # the run folder, on the worker too
    try:
        os.kill(runner, signal.SIGSTOP)  # the runner cannot run the job's stop command in time
        engine.stop_task(ex, "t")
        if runner_dies:  # once the stop reached the run: the job is left to the executor
            engine.wait_for((folder / "stop").exists, timeout=30, what="the stop to reach the run")
            os.kill(runner, signal.SIGKILL)
        assert ended_run(engine, ex).status is TaskStatus.STOPPED
        engine.wait_for(lambda: not process.alive(pid, started), timeout=30, what="the job to be gone")
        engine.wait_for(lambda: not live_in_group(pid), timeout=30, what="the job's process group to empty")
        assert "stopped" not in lines(out)  # killed after the grace, not stopped by its command
        assert [s for _, s, _ in status_history(engine, ex)].count("STOPPED") == 1
    finally:
        for leftover in (pid, runner):
            if process.alive(leftover, None):
                os.kill(leftover, signal.SIGKILL)


def ticker_request(out: Path, ticks: int, te_id: int = 1) -> dict[str, Any]:
    task = TickerTask("t", out=str(out), ticks=ticks, interval=0.05, streaming=ticks == 0)
    return request_for(task, te_id)


def orphaned_job(home: Path, out: Path, ticks: int) -> tuple[int, str | None]:
    """A service launched a ticker and died, and so did the job's runner: the job runs on alone."""
    first = LocalExecutor(home)
    first.launch(ticker_request(out, ticks))
    folder = run_dir(home, 1, 1)
    _wait(lambda: (folder / HANDLE_FILE).exists() and "tick 1" in lines(out), "the job to tick")
    runner, started = claimed_pid(folder)
    first.close()
    os.killpg(runner, signal.SIGKILL)
    _wait(lambda: not process.alive(runner, started), "the runner to be gone")
    pid = job_pid(folder)
    return pid, process.start_time(pid)


def test_a_stop_that_comes_as_a_job_is_re_attached_reaches_it_through_its_own_stop_command(
    home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    pid, started = orphaned_job(home, out, ticks=0)
    executor = LocalExecutor(home)
    try:
        executor.recover(1, 1)  # starts a runner to watch the job again...
        executor.stop(1, grace=60)  # ...and signals it at once, before it could set its SIGTERM handler
        [outcome] = drain(executor)
        assert outcome.status is TaskStatus.STOPPED
        assert lines(out)[-1] == "stopped"  # the new runner ran the job's stop command
        assert not process.alive(pid, started)
    finally:
        executor.close()


def test_a_job_that_ends_right_after_it_is_re_attached_ends_its_run_with_its_status(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    orphaned_job(home, out, ticks=40)  # two seconds of ticks: it ends while or just after a runner takes it over
    executor = LocalExecutor(home)
    try:
        executor.recover(1, 1)
        [outcome] = drain(executor)
        assert (outcome.status, outcome.error) == (TaskStatus.SUCCESS, None)
        assert lines(out)[-1] == "tick 40"
        assert "watching the ticker job again" in (run_dir(home, 1, 1) / "log.txt").read_text()
    finally:
        executor.close()


@pytest.mark.parametrize("executor", ["local", "kernel-pool"])
def test_a_job_whose_runner_dies_ends_with_its_failed_run(home: Path, tmp_path: Path, executor: str) -> None:
    # Nothing watches the job once its runner is gone and its run is FAILED: it must not run on alone.
    out = tmp_path / "out"
    with Engine(home, executor=executor) as engine:
        ex, pid, runner, started = ticking_stream(engine, out)
        try:
            os.kill(runner, signal.SIGKILL)
            assert ended_run(engine, ex).status is TaskStatus.FAILED
            engine.wait_for(lambda: not process.alive(pid, started), timeout=30, what="the job to be gone")
            engine.wait_for(lambda: not live_in_group(pid), timeout=30, what="the job's process group to empty")
        finally:
            if process.alive(pid, started):
                os.kill(pid, signal.SIGKILL)
