"""Tokens a task comes across never land in its saved log or executed notebook (issue 26, item 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import BashTask, NotebookTask, Workflow
from aiflow_nb.executors.redaction import REDACTED, Redactor
from aiflow_nb.server import info
from tests.conftest import RunningService
from tests.server import wait_execution, write_notebook


def saved(home: Path) -> str:
    """Everything the runs saved in the home: logs, notebooks, results."""
    return "\n".join(p.read_text(errors="replace") for p in home.glob("runs/*/*/*") if p.is_file())


def test_tokens_printed_by_local_tasks_are_redacted(service: RunningService, home: Path, tmp_path: Path) -> None:
    token, task_token = service.info.token, (home / info.TASK_TOKEN).read_text().strip()
    notebook = write_notebook(
        tmp_path / "leak.ipynb",
        f"import json, pathlib\nhome = pathlib.Path({str(home)!r})\n"
        "print('service', json.loads((home / 'server.json').read_text())['token'])\n"
        "print('task', (home / 'task-token').read_text())",
    )
    split = f"T=$(cat {home}/task-token); printf 'split %s' \"${{T:0:9}}\"; sleep 0.3; printf '%s\\n' \"${{T:9}}\""
    with Workflow("leaky") as wf:
        BashTask("sh", command=f"cat {home}/server.json; echo; echo task $(cat {home}/task-token); {split}")
        NotebookTask("nb", notebook=notebook)
    client = service.client()
    client.submit(wf)
    ex = client.start_execution("leaky")
    wait_execution(client, ex, "SUCCESS", timeout=120)
    runs = {te.task: te.id for te in client.task_executions(ex)}
    shell_log = client.task_log(runs["sh"])
    assert f"task {REDACTED}" in shell_log and f"split {REDACTED}" in shell_log, shell_log
    assert f'"token": "{REDACTED}"' in shell_log
    executed = json.dumps(client.task_notebook(runs["nb"]))
    assert f"service {REDACTED}" in executed and f"task {REDACTED}" in executed
    everything = shell_log + client.task_log(runs["nb"]) + executed + saved(home)
    for secret in (token, task_token):
        assert secret not in everything


@pytest.fixture
def dask_service(home: Path, dask_cluster: str) -> Iterator[RunningService]:
    running = RunningService(home, ["--executor", "dask", "--dask-address", dask_cluster]).start()
    yield running
    running.stop()


@pytest.mark.timeout(240)
def test_the_task_token_of_a_dask_task_is_redacted(dask_service: RunningService, home: Path, tmp_path: Path) -> None:
    task_token = (home / info.TASK_TOKEN).read_text().strip()
    notebook = write_notebook(tmp_path / "env.ipynb", "import os\nprint('env', os.environ['AIFLOW_NB_TOKEN'])")
    with Workflow("remote") as wf:
        BashTask("sh", command='echo "token=$AIFLOW_NB_TOKEN"')
        NotebookTask("nb", notebook=notebook)
    client = dask_service.client()
    client.submit(wf)
    ex = client.start_execution("remote")
    wait_execution(client, ex, "SUCCESS", timeout=180)
    runs = {te.task: te.id for te in client.task_executions(ex)}
    assert f"token={REDACTED}" in client.task_log(runs["sh"])
    executed = json.dumps(client.task_notebook(runs["nb"]))
    assert f"env {REDACTED}" in executed
    assert task_token not in client.task_log(runs["sh"]) + client.task_log(runs["nb"]) + executed + saved(home)


def test_a_secret_split_across_writes_is_still_redacted() -> None:
    secret = "abcdefghijklmnopqrstuvwxyz012345"
    redactor = Redactor([secret])
    out = b"".join(
        redactor.feed(piece)
        for piece in (b"x " + secret[:5].encode(), secret[5:20].encode(), secret[20:].encode() + b" y")
    )
    out += redactor.flush()
    assert out == f"x {REDACTED} y".encode()
    assert redactor.feed(b"plain text\n") == b"plain text\n"  # nothing held back when no secret can start
    assert redactor.feed(b"ends with abc") == b"ends with " and redactor.flush() == b"abc"
