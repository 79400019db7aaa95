"""Run with parameters: an execution, or one task, started with overrides for that run only.

In-process (the engine), over REST, from the CLI's ``-p`` and from ``%aiflow start WF -p``; a replay of
the log (``verify``) gives back the same state; mistakes are refused before anything is stored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from aiflow_nb import BashTask, Engine, NotebookTask, PythonTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import InvalidParameterError, UnknownParameterError
from aiflow_nb.notebooks import write_code_notebook
from tests.cli_runner import cli
from tests.conftest import RunningService
from tests.scheduler.tasks import REPO_ROOT, wait_execution, wait_run
from tests.server import call, stored_state, wait, wait_task


def notebook(tmp_path: Path, name: str = "report.ipynb") -> Path:
    """A notebook whose parameters cell declares ``day`` and ``n``; it prints both."""
    return write_code_notebook(tmp_path / name, "print(f'day={day} n={n}')", parameters='day = "1970-01-01"\nn = 1')


def report_workflow(tmp_path: Path, name: str = "rep", python: bool = True) -> Workflow:
    """A notebook task; a python task (it fails with its ``message``: the execution ends FAILED); one on "go"."""
    with Workflow(name) as wf:
        NotebookTask("report", notebook(tmp_path), parameters={"n": 2})
        if python:
            PythonTask("py", callable="tests.scheduler.tasks:fail", kwargs={"message": "default"}, cwd=str(REPO_ROOT))
        late = BashTask("late", command="true")
        late.action_on_event_received("START", "go")
    return wf


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def outputs(nb: dict[str, Any]) -> str:
    """Everything the executed notebook's cells printed."""
    return "".join(_text(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))


def injected(nb: dict[str, Any]) -> str:
    return next(_text(c["source"]) for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))


def test_an_execution_with_overrides_runs_them_and_keeps_them(engine: Engine, tmp_path: Path) -> None:
    engine.submit(report_workflow(tmp_path))
    ex = engine.start_execution("rep", parameters={"day": "2024-05-01", "message": "overridden"})
    run = wait_run(engine, ex, "report", TaskStatus.SUCCESS, timeout=120)
    nb = engine.task_notebook(run.id)
    assert "day=2024-05-01 n=2" in outputs(nb)  # the override, and the task's own parameter
    assert 'day = "2024-05-01"' in injected(nb)
    py = wait_run(engine, ex, "py", TaskStatus.FAILED, timeout=60)
    assert py.error == "ValueError: overridden"  # a python task gets it as its kwarg
    assert engine.execution(ex).parameters == {"day": "2024-05-01", "message": "overridden"}
    wait_execution(engine, ex, WorkflowStatus.FAILED)

    # A later execution without overrides runs with the task's own parameters again.
    again = engine.start_execution("rep")
    plain = wait_run(engine, again, "report", TaskStatus.SUCCESS, timeout=120)
    assert "day=1970-01-01 n=2" in outputs(engine.task_notebook(plain.id))
    assert engine.execution(again).parameters is None
    assert wait_run(engine, again, "py", TaskStatus.FAILED).error == "ValueError: default"
    wait_execution(engine, again, WorkflowStatus.FAILED)
    # The engine fixture checks verify() is consistent: the replay starts them with the same overrides.


def test_a_task_started_with_overrides_gets_them_for_that_run(engine: Engine, tmp_path: Path) -> None:
    with Workflow("one") as wf:
        first = NotebookTask("report", notebook(tmp_path))
        first.action_on_event_received("START", "never")
        BashTask("hold", command="sleep 60")
    engine.submit(wf)
    ex = engine.start_execution("one")
    engine.start_task(ex, "report", parameters={"n": 7})
    run = wait_run(engine, ex, "report", TaskStatus.SUCCESS, timeout=120)
    assert "day=1970-01-01 n=7" in outputs(engine.task_notebook(run.id))
    assert run.parameters == {"n": 7}
    engine.start_task(ex, "report")
    second = wait_run(engine, ex, "report", TaskStatus.SUCCESS, seq=2, timeout=120)
    assert "n=1" in outputs(engine.task_notebook(second.id))
    with pytest.raises(UnknownParameterError, match="task 'hold' declares no parameter 'n'"):
        engine.start_task(ex, "hold", parameters={"n": 1})
    engine.stop_execution(ex)


def test_a_restarted_run_keeps_the_values_its_task_was_started_with(engine: Engine, tmp_path: Path) -> None:
    # A RESTART stops the run and starts it again: the user's values for it go on to the next run.
    slow = write_code_notebook(
        tmp_path / "slow.ipynb", "import time\nprint(f'n={n}')\ntime.sleep(pause)", parameters="n = 1\npause = 0"
    )
    with Workflow("again") as wf:
        stream = NotebookTask("stream", slow)
        stream.action_on_event_received("START", "never")
        stream.action_on_event_received("RESTART", "model_drift")
    engine.submit(wf)
    ex = engine.start_execution("again")
    engine.start_task(ex, "stream", parameters={"n": 7, "pause": 600})
    wait_run(engine, ex, "stream", TaskStatus.RUNNING, timeout=120)
    engine.send_event("model_drift")
    restarted = wait_run(engine, ex, "stream", TaskStatus.RUNNING, seq=2, timeout=120)
    assert restarted.parameters == {"n": 7, "pause": 600}
    engine.stop_execution(ex)


def test_bad_overrides_are_refused_and_nothing_is_stored(engine: Engine, tmp_path: Path) -> None:
    engine.submit(report_workflow(tmp_path))
    before = (engine.executions(), engine.events(since=0, limit=1000))
    with pytest.raises(UnknownParameterError, match="workflow default/rep declares no parameter 'dya'") as err:
        engine.start_execution("rep", parameters={"dya": "x"})
    assert err.value.code == "unknown_parameter" and "declared: day, message, n" in str(err.value)
    with pytest.raises(InvalidParameterError, match="parameter 'day': its value must be JSON"):
        engine.start_execution("rep", parameters={"day": object()})
    with pytest.raises(InvalidParameterError, match="its value must be JSON"):
        engine.start_execution("rep", parameters={"n": math.nan})
    with pytest.raises(InvalidParameterError, match="not a valid identifier"):
        engine.start_execution("rep", parameters={"not a name": 1})
    assert (engine.executions(), engine.events(since=0, limit=1000)) == before


def test_rest_cli_and_magic(service: RunningService, home: Path, tmp_path: Path) -> None:
    client = service.client()
    client.submit(report_workflow(tmp_path, "web", python=False))

    ex = client.start_execution("web", parameters={"day": "2025-02-03"})
    run = wait_task(client, ex, "report", "SUCCESS", timeout=120)
    assert "day=2025-02-03 n=2" in outputs(client.task_notebook(run.id))
    assert client.execution(ex).parameters == {"day": "2025-02-03"}
    client.stop_execution(ex)

    # Bad input over REST: 400 naming the parameter, nothing stored.
    before = stored_state(client)
    url, token = service.info.url, service.info.token
    path = "/api/v1/workflows/default/web/executions"
    bad = call(url, "POST", path, {"parameters": {"dya": 1}}, token=token)
    assert bad.status == 400 and bad.error()["code"] == "unknown_parameter" and "'dya'" in bad.error()["message"]
    bad = call(url, "POST", path, raw_body=b'{"parameters": {"n": 1e400}}', token=token)
    assert bad.status == 400 and bad.error()["code"] == "invalid_parameter"
    bad = call(url, "POST", path, {"parameters": [1]}, token=token)
    assert bad.status == 400 and bad.error()["code"] == "invalid_parameter"
    bad = call(url, "POST", path, {"params": {"n": 1}}, token=token)
    assert bad.status == 400 and bad.error()["code"] == "invalid_parameter"
    bad = call(url, "POST", f"/api/v1/executions/{ex}/tasks/report/stop", {"parameters": {"n": 1}}, token=token)
    assert bad.status == 400 and bad.error()["code"] == "invalid_parameter"
    assert stored_state(client) == before

    # The CLI: papermill-style -p NAME=VALUE, values typed as papermill types them.
    done = cli(home, "execution", "start", "web", "-p", "day=2026-01-01", "-p", "n=5", "-o", "json")
    started = json.loads(done.stdout)["id"]
    run = wait_task(client, started, "report", "SUCCESS", timeout=120)
    assert "day=2026-01-01 n=5" in outputs(client.task_notebook(run.id))
    shown = cli(home, "execution", "show", str(started)).stdout
    assert "parameters: " in shown and "2026-01-01" in shown
    wrong = cli(home, "execution", "start", "web", "-p", "nope=1", code=1)
    assert wrong.stderr.strip().count("\n") == 0 and "'nope'" in wrong.stderr
    wrong = cli(home, "execution", "start", "web", "-p", "novalue", code=1)
    assert "NAME=VALUE" in wrong.stderr
    wrong = cli(home, "task", "start", str(started), "late", "-p", "n=1", code=1)
    assert "task 'late' declares no parameter 'n'" in wrong.stderr
    cli(home, "task", "start", str(started), "report", "-p", "n=9")
    again = wait_task(client, started, "report", "SUCCESS", seq=2, timeout=120)
    assert "day=2026-01-01 n=9" in outputs(client.task_notebook(again.id))  # the task's over the execution's
    client.stop_execution(started)


def test_the_magic_starts_with_parameters(
    service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiflow_nb import magics
    from tests.test_magics import line, new_shell, rejected

    client = service.client()
    client.submit(report_workflow(tmp_path, "mag", python=False))
    monkeypatch.chdir(tmp_path)
    shell = new_shell()
    try:
        assert shell.run_cell("%load_ext aiflow_nb").success
        out = line(shell, "start mag -p day=2027-07-07 -p n=3")
        ex = int(out.split()[2])
        run = wait_task(client, ex, "report", "SUCCESS", timeout=120)
        assert "day=2027-07-07 n=3" in outputs(client.task_notebook(run.id))
        assert wait(lambda: client.execution(ex).parameters == {"day": "2027-07-07", "n": 3})
        client.stop_execution(ex)
        shown = rejected(shell, "%aiflow start mag -p zzz=1")
        assert "'zzz'" in shown
    finally:
        magics.unload_ipython_extension(shell)
        shell.extension_manager.loaded.discard("aiflow_nb")


def test_a_home_written_before_the_parameters_columns_is_read(home: Path) -> None:
    import duckdb

    from aiflow_nb.home import database_path
    from aiflow_nb.scheduler.store import Store
    from aiflow_nb.storage import Database

    with Engine(home) as engine:
        with Workflow("old") as wf:
            BashTask("t", command="true")
        engine.submit(wf)
        ex = engine.start_execution("old")
        wait_execution(engine, ex, WorkflowStatus.SUCCESS)
    conn = duckdb.connect(str(database_path(home)))
    conn.execute("ALTER TABLE executions DROP COLUMN parameters")
    conn.execute("ALTER TABLE task_executions DROP COLUMN parameters")
    conn.close()
    db = Database(database_path(home), read_only=True)
    try:
        store = Store(db)
        found = store.execution(ex)
        assert found is not None and found.status is WorkflowStatus.SUCCESS and found.parameters is None
        [run] = store.task_executions_of([ex])
        assert run.status is TaskStatus.SUCCESS and run.parameters is None
    finally:
        db.conn.close()
    with Engine(home) as engine:  # a writer adds the columns back
        assert engine.execution(ex).parameters is None
        assert engine.verify().consistent
