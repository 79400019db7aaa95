"""The dask executor on a real ``distributed.LocalCluster`` (two worker processes).

Each notebook prints or writes ``$AIFLOW_NB_PARENT_PID``: the dask executor
sets it to the pid of the worker process that runs the task, so the tests
can tell where a task ran (and which worker to kill).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client as DaskClient

from aiflow_nb import BashTask, Engine, NotebookTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import AiflowError, SpecError
from aiflow_nb.events import keys
from aiflow_nb.executors import process
from aiflow_nb.notebooks import write_code_notebook

pytestmark = pytest.mark.timeout(240)


def worker_pids(address: str) -> set[int]:
    with DaskClient(address, timeout=30) as client:
        return set(client.run(os.getpid).values())


@pytest.fixture
def engine(home: Path, dask_cluster: str) -> Iterator[Engine]:
    eng = Engine(home, executor="dask", executor_options={"address": dask_cluster}, stop_grace=2.0)
    yield eng
    eng.close()


def finished(engine: Engine, execution_id: int) -> WorkflowStatus:
    return engine.wait_for(
        lambda: engine.execution(execution_id).status.finished and engine.execution(execution_id).status,
        timeout=120,
        what="the execution to finish",
    )


def test_a_notebook_task_runs_on_a_worker_with_its_parameters_outputs_and_log(
    engine: Engine, dask_cluster: str, tmp_path: Path
) -> None:
    notebook = write_code_notebook(
        tmp_path / "nb.ipynb",
        "import os\nprint(f'{greeting} from worker', os.environ['AIFLOW_NB_PARENT_PID'])",
        "6 * 7",
        parameters="greeting = 'hi'",
    )
    with Workflow("on-dask") as wf:
        NotebookTask("nb", notebook=notebook, parameters={"greeting": "hello"})
    engine.submit(wf)
    ex = engine.start_execution("on-dask")
    assert finished(engine, ex) is WorkflowStatus.SUCCESS
    (te,) = engine.task_executions(ex)
    assert te.status is TaskStatus.SUCCESS
    # The log and the executed notebook came back to the service's home.
    folder = engine.home / "runs" / str(te.id) / "1"
    log = (folder / "log.txt").read_text()
    line = next(ln for ln in log.splitlines() if "from worker" in ln)
    assert line.startswith("hello from worker")
    assert int(line.split()[-1]) in worker_pids(dask_cluster)
    executed = json.loads((folder / "output.ipynb").read_text())
    injected = [c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and 'greeting = "hello"' in "".join(injected[0]["source"])
    assert "".join(executed["cells"][-1]["outputs"][0]["data"]["text/plain"]) == "42"


def test_a_chain_runs_in_order_on_the_cluster(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "order.txt"
    notebook = write_code_notebook(tmp_path / "b.ipynb", f"open({str(out)!r}, 'a').write('b\\n')")
    with Workflow("chain") as wf:
        a = BashTask("a", command=f"echo a >> {out}")
        b = NotebookTask("b", notebook=notebook).start_after(a)
        BashTask("c", command=f"echo c >> {out}").start_after(b)
    engine.submit(wf)
    ex = engine.start_execution("chain")
    assert finished(engine, ex) is WorkflowStatus.SUCCESS
    assert out.read_text().split() == ["a", "b", "c"]
    runs = engine.task_executions(ex)
    assert [(te.task, te.status, te.attempt) for te in sorted(runs, key=lambda t: t.id)] == [
        ("a", TaskStatus.SUCCESS, 1),
        ("b", TaskStatus.SUCCESS, 1),
        ("c", TaskStatus.SUCCESS, 1),
    ]


def test_two_homes_on_one_cluster_keep_their_runs_apart(tmp_path: Path, dask_cluster: str) -> None:
    """Each home's task execution 1 runs and reports its own output, not the other home's."""
    logs = {}
    for name in ("first", "second"):
        with Engine(tmp_path / name, executor="dask", executor_options={"address": dask_cluster}) as engine:
            with Workflow("same") as wf:
                BashTask("t", command=f"echo ran-for-{name}")
            engine.submit(wf)
            ex = engine.start_execution("same")
            assert finished(engine, ex) is WorkflowStatus.SUCCESS
            [run] = engine.task_executions(ex)
            assert run.id == 1
            logs[name] = engine.task_log(run.id)
    assert "ran-for-first" in logs["first"] and "ran-for-second" not in logs["first"]
    assert "ran-for-second" in logs["second"] and "ran-for-first" not in logs["second"]


def test_each_task_may_name_its_executor(home: Path, dask_cluster: str, tmp_path: Path) -> None:
    with Engine(home, executor="local", executors={"dask": {"address": dask_cluster}}) as engine:
        with Workflow("mixed") as wf:
            BashTask("here", command=f'echo "${{AIFLOW_NB_PARENT_PID:-none}}" > {tmp_path / "here"}')
            BashTask(
                "there", command=f'echo "$AIFLOW_NB_PARENT_PID" > {tmp_path / "there"}', executor="dask"
            ).start_after("here")
        engine.submit(wf)
        assert engine.workflow("mixed").tasks["there"].executor == "dask"
        ex = engine.start_execution("mixed")
        assert finished(engine, ex) is WorkflowStatus.SUCCESS
    assert (tmp_path / "here").read_text().strip() == "none"  # a local run has no worker
    assert int((tmp_path / "there").read_text()) in worker_pids(dask_cluster)


def test_stop_ends_a_streaming_notebook_task_and_its_kernel_on_the_worker(engine: Engine, tmp_path: Path) -> None:
    notebook = write_code_notebook(
        tmp_path / "stream.ipynb",
        "import os, pathlib, time\n"
        "from aiflow_nb import stop_requested\n"
        f"pathlib.Path({str(tmp_path)!r}, 'kernel.pid').write_text(str(os.getpid()))\n"
        "while not stop_requested():\n"
        "    time.sleep(0.05)\n"
        f"pathlib.Path({str(tmp_path)!r}, 'step-finished').touch()",
    )
    with Workflow("stream") as wf:
        NotebookTask("s", notebook=notebook, streaming=True)
    engine.submit(wf)
    ex = engine.start_execution("stream")
    pid_file = tmp_path / "kernel.pid"
    engine.wait_for(pid_file.exists, timeout=120, what="the streaming task's kernel")
    kernel = int(pid_file.read_text())
    assert process.alive(kernel, None)
    engine.stop_task(ex, "s")
    engine.wait_for(lambda: engine.task_executions(ex)[0].status is TaskStatus.STOPPED, timeout=60, what="STOPPED")
    assert (tmp_path / "step-finished").exists()  # a gentle stop: the step ran to its end
    engine.wait_for(lambda: not process.alive(kernel, None), timeout=30, what="the kernel to end")


def test_stop_kills_a_running_command_on_the_worker(engine: Engine, tmp_path: Path) -> None:
    with Workflow("sleepy") as wf:
        BashTask("sleep", command=f"echo $$ > {tmp_path / 'pid'}; exec sleep 300")
    engine.submit(wf)
    ex = engine.start_execution("sleepy")
    engine.wait_for((tmp_path / "pid").exists, timeout=120, what="the command to start")
    command = int((tmp_path / "pid").read_text())
    engine.stop_task(ex, "sleep")
    engine.wait_for(lambda: engine.task_executions(ex)[0].status is TaskStatus.STOPPED, timeout=60, what="STOPPED")
    engine.wait_for(lambda: not process.alive(command, None), timeout=30, what="the command to end")


def test_a_lost_worker_fails_the_run_which_is_retried(engine: Engine, dask_cluster: str, tmp_path: Path) -> None:
    notebook = write_code_notebook(
        tmp_path / "victim.ipynb",
        "import os, pathlib, time\n"
        "attempt = os.environ['AIFLOW_NB_ATTEMPT']\n"
        f"pathlib.Path({str(tmp_path)!r}, f'attempt-{{attempt}}').write_text("
        "f\"{os.getpid()} {os.environ['AIFLOW_NB_PARENT_PID']}\")\n"
        "while attempt == '1':\n"
        "    time.sleep(0.1)",
    )
    with Workflow("victim") as wf:
        NotebookTask("v", notebook=notebook, max_retries=1)
    engine.submit(wf)
    ex = engine.start_execution("victim")
    first = tmp_path / "attempt-1"
    engine.wait_for(first.exists, timeout=120, what="the first attempt to start")
    kernel, worker = map(int, first.read_text().split())
    assert worker in worker_pids(dask_cluster)
    os.kill(worker, signal.SIGKILL)
    assert finished(engine, ex) is WorkflowStatus.SUCCESS
    (te,) = engine.task_executions(ex)
    assert (te.status, te.attempt) == (TaskStatus.SUCCESS, 2)
    history = [(e.value["status"], e.value["attempt"], e.value["error"]) for e in engine.events(key=keys.TASK_STATUS)]
    # Why the first attempt failed is in its RETRYING event.
    failed = [h for h in history if h[0] in ("FAILED", "RETRYING")]
    assert len(failed) == 1 and failed[0][:2] == ("RETRYING", 1), history
    assert "the Dask worker running it" in failed[0][2] and "was lost" in failed[0][2]
    # The first attempt's processes went with their worker.
    engine.wait_for(lambda: not process.alive(kernel, None), timeout=30, what="the lost run's kernel to end")


def test_a_task_naming_an_unknown_executor_is_refused_at_submit(engine: Engine) -> None:
    with Workflow("typo") as wf:
        BashTask("t", command="true", executor="dusk")
    with pytest.raises(SpecError, match="task 't': unknown executor 'dusk'; known: dask, kernel-pool, local"):
        engine.submit(wf)
    assert engine.workflows() == []


def test_a_task_on_an_executor_without_settings_fails_with_the_reason(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIFLOW_NB_DASK_ADDRESS", raising=False)
    with Engine(home, executor="local") as engine:
        with Workflow("nowhere") as wf:
            BashTask("t", command="true", executor="dask")
        engine.submit(wf)
        ex = engine.start_execution("nowhere")
        assert finished(engine, ex) is WorkflowStatus.FAILED
        (te,) = engine.task_executions(ex)
        assert te.error is not None and "executor 'dask' unavailable" in te.error and "--dask-address" in te.error


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_scheduler_is_a_clear_error(home: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(AiflowError, match=f"dask: cannot reach the Dask scheduler at {address}"):
        Engine(home, executor="dask", executor_options={"address": address, "connect_timeout": 1})
    # The home is not left locked.
    Engine(home, executor="local").close()


SERVER = [sys.executable, "-m", "aiflow_nb.server"]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("garbage", "missing port number"),
        ("foo://x:1", "unknown address scheme 'foo'"),
        ("tcp://127.0.0.1:notaport", "invalid literal"),
    ],
)
def test_a_malformed_address_is_one_clear_line_at_once(home: Path, address: str, why: str) -> None:
    done = subprocess.run(
        [*SERVER, "--home", str(home), "--quiet", "--executor", "dask", "--dask-address", address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()  # no traceback of a half-made Dask client
    assert line.startswith(f"aiflow-nb: dask: {address!r} is not a scheduler address like tcp://HOST:8786 (")
    assert why in line


def test_without_distributed_the_error_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from aiflow_nb.errors import ExecutorError\n"
        "from aiflow_nb.executors.dask import DaskExecutor\n"
        "try:\n"
        f"    DaskExecutor({str(tmp_path)!r}, address='tcp://127.0.0.1:1')\n"
        "except ExecutorError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "the dask executor needs Dask's distributed package: pip install 'aiflow-nb[dask]'"
