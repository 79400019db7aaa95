"""The kernel-pool executor: tasks on runners and kernels started ahead of time."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from aiflow_nb import BashTask, Engine, NotebookTask, PythonTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import ExecutorError
from aiflow_nb.executors import process
from aiflow_nb.executors.kernel_pool import KernelPoolExecutor
from aiflow_nb.notebooks import write_code_notebook as write_notebook
from tests.executors.test_local import claimed_pid
from tests.scheduler.tasks import wait_run


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    # The python3 pool from the start (by default it starts with the first notebook task).
    eng = Engine(home, executor="kernel-pool", executor_options={"kernels": ["python3"]}, stop_grace=2.0)
    yield eng
    spares = spare_pids(eng)
    eng.close()
    wait_gone(spares)


def spare_pids(engine: Engine) -> set[int]:
    executor = engine.executor
    assert isinstance(executor, KernelPoolExecutor)
    return {spare.pid for pool in executor.spares.values() for spare in pool}


def wait_gone(pids: set[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while any(process.alive(pid, None) for pid in pids):
        assert time.monotonic() < deadline, f"processes {pids} still alive"
        time.sleep(0.05)


def run(engine: Engine, wf: Workflow, timeout: float = 90) -> tuple[int, set[int]]:
    """Submit ``wf``, start it once every pool has a spare, wait for its end.

    Returns its id and the spare pids from before the start.
    """
    engine.submit(wf)
    # A pool emptied by the previous run is refilled just after that run has ended.
    executor = engine.executor
    assert isinstance(executor, KernelPoolExecutor)
    # Ready: a launch that finds no ready spare forks its runner instead.
    engine.wait_for(
        lambda: all(executor.spares[p] and all(executor._ready_file(s).exists() for s in executor.spares[p])
                    for p in executor.sizes),
        60,
        "every pool to have a ready spare",
    )  # fmt: skip
    spares = spare_pids(engine)
    ex = engine.start_execution(wf.name)
    engine.wait_for(lambda: engine.execution(ex).status.finished, timeout, f"execution {ex} to end")
    return ex, spares


def test_a_notebook_runs_on_a_warm_kernel_as_papermill_would_run_it(engine: Engine, tmp_path: Path) -> None:
    source = write_notebook(
        tmp_path / "greet.ipynb",
        "import json, os\n"
        "print(f'greeting={greeting}')\n"
        'json.dump({"greeting": greeting, "seq": aiflow_seq, "cwd": os.getcwd(),\n'
        '           "env": os.environ["AIFLOW_NB_TASK_EXECUTION_ID"]}, open("seen.json", "w"))',
        parameters='greeting = "default"',
    )
    with Workflow("greet") as wf:
        NotebookTask("nb", notebook=source, parameters={"greeting": "hello"}, cwd=str(tmp_path))
    ex, spares = run(engine, wf)
    (te,) = engine.task_executions(ex)
    assert (engine.execution(ex).status, te.status, te.error) == (WorkflowStatus.SUCCESS, TaskStatus.SUCCESS, None)
    # It ran on a runner started before the execution was.
    assert claimed_pid(engine.run_dir(te.id))[0] in spares

    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen == {"greeting": "hello", "seq": 1, "cwd": str(tmp_path), "env": str(te.id)}
    out = nbformat.read(engine.run_dir(te.id) / "output.ipynb", as_version=4)
    assert out.metadata.language_info.name == "python"
    assert out.cells[0].metadata.tags == ["parameters"]
    assert "injected-parameters" in out.cells[1].metadata.tags
    assert 'greeting = "hello"' in out.cells[1].source
    printed = "".join(o.get("text", "") for o in out.cells[2].outputs if o.get("name") == "stdout")
    assert "greeting=hello" in printed
    assert "greeting=hello" in (engine.run_dir(te.id) / "log.txt").read_text()


def test_a_long_run_can_be_watched_in_its_output_notebook(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    source = write_notebook(
        tmp_path / "watched.ipynb",
        "first = 1",
        f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)",
        "print('done')",
    )
    with Workflow("watched") as wf:
        NotebookTask("nb", notebook=source)
    engine.submit(wf)
    ex = engine.start_execution("watched")
    output = None

    def statuses() -> list[str]:
        nonlocal output
        if output is None:
            runs = engine.task_executions(ex)
            if not runs:
                return []
            output = engine.run_dir(runs[0].id) / "output.ipynb"
        try:
            nb = nbformat.read(output, as_version=4)
        except (OSError, ValueError):  # not written yet
            return []
        # The cells of the source, after the one aiflow-nb injects the run's parameters in.
        return [cell.metadata.papermill.status for cell in nb.cells[-3:]]

    # While the second cell waits, the saved notebook shows the first done and the second running.
    engine.wait_for(
        lambda: statuses() == ["completed", "running", "pending"], 60, "the notebook to show cell 2 running"
    )
    gate.touch()
    te = wait_run(engine, ex, "nb", TaskStatus.SUCCESS, timeout=60)
    assert statuses() == ["completed", "completed", "completed"]
    out = nbformat.read(engine.run_dir(te.id) / "output.ipynb", as_version=4)
    assert "done" in "".join(o.get("text", "") for o in out.cells[-1].outputs)


def test_no_state_passes_from_one_task_run_to_the_next(engine: Engine, tmp_path: Path) -> None:
    source = write_notebook(tmp_path / "leak.ipynb", "assert 'leak' not in globals(), 'state leaked'\nleak = 1")
    with Workflow("leaky") as wf:
        NotebookTask("nb", notebook=source)
    runners = set()
    for _ in range(3):
        ex, spares = run(engine, wf)
        (te,) = engine.task_executions(ex)
        assert (te.status, te.error) == (TaskStatus.SUCCESS, None)
        pid = claimed_pid(engine.run_dir(te.id))[0]
        assert pid in spares
        runners.add(pid)
    assert len(runners) == 3  # a fresh runner and kernel each time


@pytest.mark.parametrize(("fork", "how"), [(True, "on a forked runner"), (False, "on spare runner")])
def test_a_task_that_finds_its_pool_empty_gets_a_runner_of_its_own(
    home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, fork: bool, how: str
) -> None:
    """The pool has one spare and two tasks start at once: the second forks a runner, or without
    forking has a spare started for it."""
    source = write_notebook(tmp_path / "pair.ipynb", "import os\nprint(os.getpid())")
    with Workflow("pair") as wf:
        NotebookTask("a", notebook=source)
        NotebookTask("b", notebook=source)
    caplog.set_level(logging.INFO, logger="aiflow_nb.executors.kernel_pool")
    engine = Engine(home, executor="kernel-pool", executor_options={"kernels": ["python3"], "fork": fork})
    try:
        ex, _ = run(engine, wf)
        runs = engine.task_executions(ex)
        assert [(te.status, te.error) for te in runs] == [(TaskStatus.SUCCESS, None)] * 2
        launched = [r.getMessage() for r in caplog.records if r.getMessage().startswith("launched task execution")]
        assert len(launched) == 2 and "on spare runner" in launched[0] and how in launched[1], launched
        assert len({claimed_pid(engine.run_dir(te.id))[0] for te in runs}) == 2
    finally:
        spares = spare_pids(engine)
        engine.close()
        wait_gone(spares)


def test_bash_and_python_tasks_run_on_a_spare_runner_too(engine: Engine, tmp_path: Path) -> None:
    with Workflow("mixed") as wf:
        BashTask("sh", command=f"echo $AIFLOW_NB_TASK > {tmp_path}/sh.txt")
        PythonTask("py", callable="shutil:which", kwargs={"cmd": "sh"}).start_after("sh")
    ex, spares = run(engine, wf)
    sh, py = engine.task_executions(ex)
    assert (sh.status, py.status) == (TaskStatus.SUCCESS, TaskStatus.SUCCESS), (sh.error, py.error)
    assert (tmp_path / "sh.txt").read_text() == "sh\n"
    assert claimed_pid(engine.run_dir(sh.id))[0] in spares


def test_stop_ends_the_run_and_its_warm_kernel(engine: Engine, tmp_path: Path) -> None:
    source = write_notebook(
        tmp_path / "slow.ipynb",
        f"import os, time\nopen({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\ntime.sleep(120)",
    )
    with Workflow("slow") as wf:
        NotebookTask("nb", notebook=source)
    engine.submit(wf)
    ex = engine.start_execution("slow")
    engine.wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 60, "the cell to start")
    kernel = int((tmp_path / "pid").read_text())
    engine.stop_task(ex, "nb")
    wait_run(engine, ex, "nb", TaskStatus.STOPPED, timeout=60)
    wait_gone({kernel})


def test_a_task_that_kills_its_kernel_fails_clearly_and_the_pool_refills(engine: Engine, tmp_path: Path) -> None:
    source = write_notebook(tmp_path / "kill.ipynb", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    with Workflow("suicide") as wf:
        NotebookTask("nb", notebook=source)
    ex, spares = run(engine, wf)
    (te,) = engine.task_executions(ex)
    assert te.status is TaskStatus.FAILED
    assert te.error is not None and "kernel died" in te.error
    assert claimed_pid(engine.run_dir(te.id))[0] in spares

    ok = write_notebook(tmp_path / "ok.ipynb", "x = 1")
    with Workflow("after") as wf2:
        NotebookTask("nb", notebook=ok)
    ex2, spares2 = run(engine, wf2)
    (te2,) = engine.task_executions(ex2)
    assert te2.status is TaskStatus.SUCCESS
    assert claimed_pid(engine.run_dir(te2.id))[0] in spares2


def test_streaming_tasks_and_other_kernels_start_a_runner_of_their_own(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second kernel spec the pool does not keep.
    spec = tmp_path / "jupyter" / "kernels" / "other"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Other",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    source = write_notebook(tmp_path / "x.ipynb", "import aiflow_nb\nx = 1")
    with Workflow("fallback") as wf:
        NotebookTask("other", notebook=source, kernel_name="other")
        NotebookTask("stream", notebook=source, streaming=True)
    engine.submit(wf)
    spares = spare_pids(engine)
    ex = engine.start_execution("fallback")
    # (A streaming task that ends keeps its execution running: the stream may be restarted.)
    tasks = [wait_run(engine, ex, name, TaskStatus.SUCCESS, timeout=90) for name in ("other", "stream")]
    assert all(claimed_pid(engine.run_dir(t.id))[0] not in spares for t in tasks)
    assert "with kernel: other" in (engine.run_dir(tasks[0].id) / "log.txt").read_text()


def test_closing_the_engine_ends_the_spares(home: Path) -> None:
    engine = Engine(home, executor="kernel-pool", executor_options={"kernels": ["python3"]})
    spares = spare_pids(engine)
    assert len(spares) == 2  # one plain runner, one with a python3 kernel
    engine.close()
    wait_gone(spares)


def test_by_default_a_kernels_pool_starts_with_its_first_notebook_task(home: Path, tmp_path: Path) -> None:
    engine = Engine(home)  # kernel-pool is the default executor
    try:
        assert isinstance(engine.executor, KernelPoolExecutor)
        assert len(spare_pids(engine)) == 1  # a plain runner only: no kernel is started before it is needed
        source = write_notebook(tmp_path / "x.ipynb", "x = 1")
        with Workflow("twice") as wf:
            NotebookTask("nb", notebook=source)
        runners = []
        for _ in range(2):
            ex, spares = run(engine, wf)
            (te,) = engine.task_executions(ex)
            assert te.status is TaskStatus.SUCCESS, te.error
            runners.append(claimed_pid(engine.run_dir(te.id))[0] in spares)
        assert runners == [False, True]  # the first started the python3 pool, the second ran on it
    finally:
        spares = spare_pids(engine)
        engine.close()
        wait_gone(spares)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": "2"}, "pool_size"),
        ({"kernels": "python3"}, "kernels"),
        ({"pool_sise": 2}, "kernel-pool: unknown option.s. pool_sise"),
    ],
)
def test_bad_pool_options_are_refused_and_leave_the_home_usable(
    home: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ExecutorError, match=message):
        Engine(home, executor="kernel-pool", executor_options=options)
    assert not os.path.exists(home / "logs" / "kernel-pool.log")  # no spare was started
    Engine(home).close()  # the failed engine let go of the database


def test_a_task_sees_the_environment_of_its_launch_not_of_its_spares_start(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "user_mod.py").write_text("VALUE = 'from PYTHONPATH'\n")
    source = write_notebook(
        tmp_path / "env.ipynb", f"import user_mod\nopen({str(tmp_path / 'nb.txt')!r}, 'w').write(user_mod.VALUE)"
    )
    with Workflow("env") as wf:
        BashTask("sh", command=f'echo "$AIFLOW_TEST_VAR" > {tmp_path}/sh.txt')
        NotebookTask("nb", notebook=source)
    engine.submit(wf)
    old_spares = spare_pids(engine)
    # Set after the spares started, as a notebook's %env or os.environ would.
    monkeypatch.setenv("AIFLOW_TEST_VAR", "set later")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    ex = engine.start_execution("env")
    engine.wait_for(lambda: engine.execution(ex).status.finished, 90, "the execution to end")
    assert [(t.status, t.error) for t in engine.task_executions(ex)] == [(TaskStatus.SUCCESS, None)] * 2
    assert (tmp_path / "sh.txt").read_text() == "set later\n"
    assert (tmp_path / "nb.txt").read_text() == "from PYTHONPATH"
    wait_gone(old_spares)  # let go, and replaced by spares with the new environment
    assert spare_pids(engine) and not spare_pids(engine) & old_spares


def test_a_task_run_leaves_the_users_ipython_history_alone(engine: Engine, tmp_path: Path) -> None:
    # Its kernel keeps the input history in memory, as a session that writes no history file would.
    source = write_notebook(
        tmp_path / "history.ipynb",
        "x = 1",
        "import os\nfrom IPython import get_ipython\nhistory = get_ipython().history_manager\n"
        "assert len(history.input_hist_raw) > 1, 'no history in the session'\n"
        "assert str(history.hist_file) == ':memory:', f'history written to {history.hist_file}'",
    )
    with Workflow("history") as wf:
        NotebookTask("nb", notebook=source)
    ex, _ = run(engine, wf)
    (te,) = engine.task_executions(ex)
    assert (te.status, te.error) == (TaskStatus.SUCCESS, None)
