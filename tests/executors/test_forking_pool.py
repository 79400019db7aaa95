"""kernel-pool on forked runners and kernels: STOP, a fork server killed mid-burst, the example notebooks."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from aiflow_nb import Engine, NotebookTask, TaskStatus, Workflow
from aiflow_nb.executors.forking import provisioner
from aiflow_nb.executors.kernel_pool import KernelPoolExecutor
from aiflow_nb.notebooks import write_code_notebook
from tests.conftest import RunningService
from tests.executors.test_forking import started, wait_for
from tests.executors.test_kernel_pool import spare_pids, wait_gone
from tests.notebooks import test_examples


@pytest.fixture
def engine(home: Path) -> Iterator[Engine]:
    eng = Engine(home, executor="kernel-pool", executor_options={"kernels": ["python3"]}, stop_grace=2.0)
    yield eng
    spares = spare_pids(eng)
    eng.close()
    wait_gone(spares)


def servers(engine: Engine) -> tuple[dict[str, int], dict[str, int]]:
    """The pool's runner and python3 kernel fork servers' status, once both listen."""
    executor = engine.executor
    assert isinstance(executor, KernelPoolExecutor) and executor._forks is not None
    kernel_server = executor._forks.kernels["python3"]
    assert kernel_server is not None
    return started(executor._forks.runners), started(kernel_server)


def test_stop_ends_a_forked_kernel_and_its_children(engine: Engine, tmp_path: Path) -> None:
    _, kernels = servers(engine)
    with Workflow("slow") as wf:
        for name in ("a", "b"):  # one spare at most: at least one is forked
            source = write_code_notebook(
                tmp_path / f"{name}.ipynb",
                "import os, subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n"
                f"open({str(tmp_path / name)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}} {{os.getppid()}}')\n"
                "time.sleep(300)",
            )
            NotebookTask(name, notebook=source)
    engine.submit(wf)
    ex = engine.start_execution("slow")
    seen = [
        [int(p) for p in wait_for(lambda n=n: (tmp_path / n).exists() and (tmp_path / n).read_text(), "a cell").split()]
        for n in ("a", "b")
    ]
    assert any(parent == kernels["pid"] for _, _, parent in seen)
    for name in ("a", "b"):
        engine.stop_task(ex, name)
    for name in ("a", "b"):
        engine.wait_for(
            lambda n=name: any(t.task == n and t.status is TaskStatus.STOPPED for t in engine.task_executions(ex)),
            60,
            f"{name} to stop",
        )
    wait_gone({pid for kernel, child, _ in seen for pid in (kernel, child)})


def test_fork_servers_killed_mid_burst_fail_no_run(engine: Engine, tmp_path: Path) -> None:
    runners, kernels = servers(engine)
    gate = tmp_path / "gate"
    source = write_code_notebook(
        tmp_path / "gated.ipynb", f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.02)"
    )
    with Workflow("burst") as wf:
        for i in range(4):
            NotebookTask(f"t{i}", notebook=source)
    engine.submit(wf)
    first = engine.start_execution("burst")
    engine.wait_for(
        lambda: sum(t.status is TaskStatus.RUNNING for t in engine.task_executions(first)) == 4, 90, "4 runs"
    )
    os.kill(runners["pid"], signal.SIGKILL)
    os.kill(kernels["pid"], signal.SIGKILL)
    second = engine.start_execution("burst")  # launched while the servers are dead
    gate.touch()
    for ex in (first, second):
        engine.wait_for(lambda e=ex: engine.execution(e).status.finished, 120, f"execution {ex} to end")
        assert [(t.status, t.error) for t in engine.task_executions(ex)] == [(TaskStatus.SUCCESS, None)] * 4
    again = servers(engine)  # started again
    assert again[0]["pid"] != runners["pid"] and again[1]["pid"] != kernels["pid"]


def test_a_forked_kernel_that_dies_before_it_answers_fails_no_run(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel spec whose kernel, in a run's folder, ends after its sockets listen and before it answers,
    # once per run: the forked runner's own kernel dies so, and the run goes on, on a kernel started for it.
    dies = (
        "import os, pathlib; d = os.environ.get('AIFLOW_NB_RUN_DIR'); m = d and pathlib.Path(d, 'kernel-died')\n"
        "if m and not m.exists(): m.touch(); os._exit(3)"
    )
    spec = tmp_path / "jupyter" / "kernels" / "dies-once"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", f"--IPKernelApp.code_to_run={dies}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "dies", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    engine = Engine(home, executor="kernel-pool", executor_options={"kernels": ["dies-once"]})
    try:
        executor = engine.executor
        assert isinstance(executor, KernelPoolExecutor) and executor._forks is not None
        kernel_server = executor._forks.kernels["dies-once"]
        assert kernel_server is not None
        started(executor._forks.runners)
        started(kernel_server)
        source = write_code_notebook(tmp_path / "x.ipynb", "x = 1 + 1")
        with Workflow("two") as wf:
            for name in ("a", "b"):  # one spare at most: at least one is forked
                NotebookTask(name, notebook=source, kernel_name="dies-once")
        engine.submit(wf)
        ex = engine.start_execution("two")
        engine.wait_for(lambda: engine.execution(ex).status.finished, 120, "the execution to end")
        runs = engine.task_executions(ex)
        assert [(t.status, t.error) for t in runs] == [(TaskStatus.SUCCESS, None)] * 2
        died = list((home / "runs").glob("*/*/kernel-died"))
        assert died  # a forked run's kernel did die first
        assert "did not answer" in (died[0].parent / "log.txt").read_text()
    finally:
        spares = spare_pids(engine)
        engine.close()
        wait_gone(spares)


@pytest.fixture
def forked_kernels(home: Path) -> Iterator[None]:
    """This process's python3 kernels forked, as in a runner of a kernel-pool."""
    factory = KernelProvisionerFactory.instance()
    was = factory.default_provisioner_name
    provisioner.use_by_default()
    server = provisioner.server_for(home, "python3", (), owner=os.getpid())
    try:
        started(server)
        yield
        status = server.status()
        assert status is not None and status["forks"] >= 1
    finally:
        factory.default_provisioner_name = was
        server.stop()


@pytest.mark.usefixtures("forked_kernels")
@pytest.mark.parametrize("example", ["quickstart", "streaming_watermark", "schedules"])
def test_the_example_notebooks_give_the_same_outcomes_on_forked_kernels(
    example: str, service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    getattr(test_examples, f"test_{example}")(service, tmp_path, monkeypatch)
