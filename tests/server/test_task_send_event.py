"""``aiflow_nb.client.send_event`` from inside a running notebook task is scoped to its execution.

Two executions of one workflow run the same notebook task A, which waits for
a go-file of its own execution.  The test lets only the first one send
``ready`` (through ``from aiflow_nb.client import send_event``) and ``also``
(through ``aiflow_nb.client.send_event``).  The events carry the sender
``<execution>/<task>/<seq>``, the execution id as context and the workflow's
namespace, and task B, which starts on ``ready``, runs in the sending
execution only.  An unscoped ``ready`` sent from outside then does start B in
the other execution: it was the scoping that kept it out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from aiflow_nb import BashTask, NotebookTask, TaskAction, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.client import Client
from aiflow_nb.notebooks import write_code_notebook
from tests.conftest import RunningService
from tests.server import wait

NAMESPACE = "team"

WAIT_CELL = """\
import json, pathlib, time

from aiflow_nb.client import send_event
import aiflow_nb.client

go = pathlib.Path(folder) / f"go-{aiflow_execution_id}"
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        raise TimeoutError(f"no {go}")
    time.sleep(0.05)
"""

SEND_CELL = """\
if go.read_text() == "send":
    first = send_event("ready", {"execution": aiflow_execution_id})
    second = aiflow_nb.client.send_event("also", {"after": first})
    pathlib.Path(folder, f"sent-{aiflow_execution_id}").write_text(json.dumps([first, second]))
"""


def sender_notebook(path: Path) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = new_code_cell('folder = ""')
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, new_code_cell(WAIT_CELL), new_code_cell(SEND_CELL)]
    nbformat.write(nb, path)
    return path


def runs(client: Client, execution_id: int, task: str) -> list[Any]:
    return [te for te in client.task_executions(execution_id) if te.task == task]


def release(folder: Path, execution_id: int, what: str) -> None:
    """Let task A of ``execution_id`` go on ("send" or "skip"); written atomically."""
    tmp = folder / f"go-{execution_id}.tmp"
    tmp.write_text(what)
    tmp.rename(folder / f"go-{execution_id}")


def test_send_event_from_a_notebook_task_is_scoped_to_its_execution(service: RunningService, tmp_path: Path) -> None:
    client = service.client()
    notebook = sender_notebook(tmp_path / "sender.ipynb")
    with Workflow("scoped", namespace=NAMESPACE) as wf:
        NotebookTask("A", notebook=notebook, parameters={"folder": str(tmp_path)})
        b = BashTask("B", command='echo "B got $AIFLOW_NB_EVENT"')
    b.action_on_event_received(TaskAction.START, "ready")  # the workflow's namespace
    client.submit(wf)
    first = client.start_execution("scoped", NAMESPACE)
    second = client.start_execution("scoped", NAMESPACE)
    for ex in (first, second):
        wait(
            lambda ex=ex: [te.status for te in runs(client, ex, "A")] == [TaskStatus.RUNNING],
            60,
            f"task A of execution {ex} to run",
        )

    release(tmp_path, first, "send")
    b_runs = wait(
        lambda: [te for te in runs(client, first, "B") if te.status.finished], 120, "task B of the sending execution"
    )
    sent_file = tmp_path / f"sent-{first}"
    wait(sent_file.exists, 60, "task A to report the offsets it was given")
    sent = json.loads(sent_file.read_text())

    # Both functions scoped their event to the sending task's execution.
    ready = client.events(key="ready")
    also = client.events(key="also")
    assert [e.offset for e in ready + also] == sent
    for event in ready + also:
        assert event.sender == f"{first}/A/1"
        assert event.context == {"execution_id": first}
        assert event.namespace == NAMESPACE
    assert ready[0].value == {"execution": first}
    assert also[0].value == {"after": ready[0].offset}

    # B ran in the sending execution, on that event, and that execution then ended.
    assert [(te.seq, te.status, te.event["offset"]) for te in b_runs] == [(1, TaskStatus.SUCCESS, ready[0].offset)]
    assert "B got" in client.task_log(b_runs[0].id)
    assert wait(lambda: client.execution(first).status.finished, 60, f"execution {first} to end") is True
    assert client.execution(first).status is WorkflowStatus.SUCCESS

    # The scheduler has applied the event (B started from it), and not in the other execution.
    assert runs(client, second, "B") == []
    assert [te.status for te in runs(client, second, "A")] == [TaskStatus.RUNNING]

    # Control: the same key sent from outside, unscoped, starts B in every running execution.
    outside = client.send_event("ready", {"from": "outside"}, namespace=NAMESPACE)
    other_b = wait(
        lambda: [te for te in runs(client, second, "B") if te.status.finished], 60, "task B of the other execution"
    )
    assert [(te.seq, te.status, te.event["offset"]) for te in other_b] == [(1, TaskStatus.SUCCESS, outside)]
    assert len(runs(client, first, "B")) == 1  # the finished execution is not touched

    release(tmp_path, second, "skip")
    wait(lambda: client.execution(second).status.finished, 60, f"execution {second} to end")
    assert client.execution(second).status is WorkflowStatus.SUCCESS
    assert [(e.sender, e.context) for e in client.events(key="ready")] == [
        (f"{first}/A/1", {"execution_id": first}),
        (None, None),
    ]


def test_a_task_on_a_dask_worker_sends_an_event_that_starts_another(
    home: Path, dask_cluster: str, tmp_path: Path
) -> None:
    """The service passes its URL and the task token to the worker; the event is scoped as locally."""
    running = RunningService(home, ["--executor", "dask", "--dask-address", dask_cluster]).start()
    try:
        client = running.client()
        notebook = write_code_notebook(
            tmp_path / "relay.ipynb",
            "import os, pathlib\n"
            "from aiflow_nb import send_event\n"
            f"pathlib.Path({str(tmp_path)!r}, 'token').write_text(os.environ['AIFLOW_NB_TOKEN'])\n"
            "send_event('ready', {'from': 'a worker'})",
        )
        with Workflow("relay", namespace=NAMESPACE) as wf:
            NotebookTask("A", notebook=notebook)
            b = BashTask("B", command=f'echo "$AIFLOW_NB_EVENT" > {tmp_path / "b.json"}')
        b.action_on_event_received(TaskAction.START, "ready")
        client.submit(wf)
        ex = client.start_execution("relay", NAMESPACE)
        wait(lambda: [te.status for te in runs(client, ex, "B")] == [TaskStatus.SUCCESS], 120, "B to succeed")
        (ready,) = client.events(key="ready")
        assert ready.value == {"from": "a worker"}
        assert (ready.namespace, ready.sender, ready.context) == (NAMESPACE, f"{ex}/A/1", {"execution_id": ex})
        assert json.loads((tmp_path / "b.json").read_text())["offset"] == ready.offset
        # The worker got the task token (it may only send events), not the service's own.
        assert (tmp_path / "token").read_text() == (home / "task-token").read_text() != running.info.token
    finally:
        running.stop()
