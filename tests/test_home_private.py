"""The home is the user's alone whichever way the service starts (issue 26, item 1).

The service is started as users start it: ``aiflow-nb server start`` (detached)
and ``%load_ext aiflow_nb`` in IPython, from a process whose umask is the
usual 022; then a notebook task and a shell task run and write output, an
event is sent, and every folder and file of the home is checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiflow_nb import BashTask, Engine, NotebookTask, Workflow, WorkflowStatus
from aiflow_nb import magics as aiflow_magics
from aiflow_nb.client import Client
from aiflow_nb.executors import process
from aiflow_nb.server import control, info
from tests.cli_runner import cli
from tests.home_modes import kinds, not_owner_only
from tests.scheduler.tasks import wait_execution as wait_run_execution
from tests.server import wait_execution, write_notebook
from tests.test_magics import new_shell


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most users have (022): what the service and its starters must not rely on."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def stop_service(home: Path) -> Iterator[None]:
    """Stop (else kill, by pid) the service a test started on its home."""
    yield
    server = info.read(home)
    try:
        control.stop(home)
    finally:
        if server is not None and process.alive(server.pid, server.started):
            os.kill(server.pid, 9)


def run_tasks_that_write(client: Client, tmp_path: Path) -> None:
    """A notebook task and a shell task run and write output; an event goes into the log (and its WAL)."""
    notebook = write_notebook(tmp_path / "out.ipynb", "print('output of the notebook')")
    with Workflow("private") as wf:
        NotebookTask("nb", notebook=notebook)
        BashTask("sh", command="echo output of the shell; echo more > written-by-the-task.txt")
    client.submit(wf)
    ex = client.start_execution("private")
    client.send_event("a_value", {"secret": "in the log"})
    wait_execution(client, ex, "SUCCESS", timeout=120)


def check_home(home: Path) -> None:
    found = kinds(home)
    for expected in ("server.json", "task-token", "aiflow.duckdb", "server.log", "log.txt", "task.json",
                     "output.ipynb", "result.json", "written-by-the-task.txt"):  # fmt: skip
        assert expected in found, (expected, sorted(found))
    assert not_owner_only(home) == []


def test_cli_server_start_makes_an_owner_only_home(
    home: Path, tmp_path: Path, usual_umask: None, stop_service: None
) -> None:
    assert "aiflow-nb started" in cli(home, "server", "start").stdout
    with Client(home=home) as client:
        run_tasks_that_write(client, tmp_path)
    check_home(home)


def test_a_home_readable_by_others_is_tightened_at_start_with_a_log_line(
    home: Path, tmp_path: Path, usual_umask: None, stop_service: None
) -> None:
    # As an older version left it: everything 0755 / 0644.
    (home / "logs").mkdir(parents=True)
    (home / "logs" / "server.log").write_text("an older line\n")
    (home / "runs" / "1" / "1").mkdir(parents=True)
    (home / "runs" / "1" / "1" / "log.txt").write_text("output of an old run\n")
    for path in (home, home / "logs", home / "runs", home / "runs" / "1", home / "runs" / "1" / "1"):
        path.chmod(0o755)
    assert not_owner_only(home)
    cli(home, "server", "start")
    assert not_owner_only(home) == []
    logged = (home / "logs" / "server.log").read_text()
    assert logged.count("was readable by other users") == 1, logged
    cli(home, "server", "stop")
    cli(home, "server", "start")  # nothing left to tighten: no second line
    assert (home / "logs" / "server.log").read_text().count("was readable by other users") == 1


def test_load_ext_starts_a_service_with_an_owner_only_home(
    home: Path, tmp_path: Path, usual_umask: None, stop_service: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIFLOW_NB_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    shell = new_shell()
    try:
        assert shell.run_cell("%load_ext aiflow_nb").success  # starts the service on the home
        server = info.read(home)
        assert server is not None and server.alive
        with Client(home=home) as client:
            run_tasks_that_write(client, tmp_path)
        check_home(home)
        assert json.loads((home / "server.json").read_text())["pid"] == server.pid
    finally:
        aiflow_magics.unload_ipython_extension(shell)
        shell.extension_manager.loaded.discard("aiflow_nb")


@pytest.mark.parametrize("executor", ["kernel-pool", "local"])
def test_an_engine_in_the_users_own_process_keeps_the_home_owner_only(
    home: Path, tmp_path: Path, usual_umask: None, executor: str
) -> None:
    # A script or a notebook runs the engine itself: its umask stays the user's (022), so every folder and
    # file the engine and its executors make must be owner-only by their own mode.
    notebook = write_notebook(tmp_path / "out.ipynb", "print('output of the notebook')")
    with Workflow("private") as wf:
        NotebookTask("nb", notebook=notebook)
        BashTask("sh", command="echo output of the shell; echo more > written-by-the-task.txt")
    with Engine(home, executor=executor) as engine:
        engine.submit(wf)
        ex = engine.start_execution("private")
        engine.send_event("a_value", {"secret": "in the log"})
        wait_run_execution(engine, ex, WorkflowStatus.SUCCESS, timeout=120)
    found = kinds(home)
    for expected in ("aiflow.duckdb", "log.txt", "task.json", "output.ipynb", "result.json"):
        assert expected in found, (expected, sorted(found))
    wrong = not_owner_only(home)
    assert wrong == [], "\n".join(wrong)
    assert os.umask(0o022) == 0o022  # the user's umask was left as it was
