"""A notebook task must name its kernel: refused at submit (file named, nothing stored), or named by the task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat import v4

from aiflow_nb import Engine, NotebookTask, TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.errors import InvalidNotebookError
from aiflow_nb.notebooks import kernel_problem
from tests.conftest import RunningService


def bare_notebook(path: Path, source: str = "print('ran', 6 * 7)") -> Path:
    """A notebook as a script or a hand-made file leaves it: cells, no kernelspec, no language_info."""
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(source)]), path)
    return path


def test_kernel_problem_asks_for_a_kernel_name() -> None:
    named = {"metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}}}
    assert kernel_problem(named, None) is None
    assert kernel_problem({"metadata": {}}, "python3") is None
    for notebook in ({"metadata": {}}, {"metadata": {"kernelspec": {"display_name": "x"}}}, {}, None):
        problem = kernel_problem(notebook, None)
        assert problem is not None and "kernel_name=" in problem and "kernelspec" in problem


def test_a_notebook_file_without_a_kernel_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = bare_notebook(tmp_path / "no_kernel.ipynb")
    with pytest.raises(InvalidNotebookError, match=r"task 'train': notebook '.*no_kernel\.ipynb' names no kernel"):
        NotebookTask("train", notebook=path)
    # The same file on the Dask executor: the notebook is checked where the task is made, whatever runs it.
    with pytest.raises(InvalidNotebookError, match=r"no_kernel\.ipynb"):
        NotebookTask("train", notebook=path, executor="dask")


def test_an_embedded_notebook_without_a_kernel_is_refused() -> None:
    spec: dict[str, Any] = {
        "name": "wf",
        "tasks": [{"name": "t", "kind": "notebook", "notebook": json.loads(nbformat.writes(v4.new_notebook()))}],
    }
    with pytest.raises(InvalidNotebookError, match="task 't': the embedded notebook names no kernel"):
        Workflow.from_spec(spec)


def test_a_cell_task_names_its_kernel(tmp_path: Path) -> None:
    nb = v4.new_notebook(cells=[v4.new_code_cell("%%aiflow task hello --workflow cells\nprint('hello')")])
    path = tmp_path / "defs.ipynb"
    nbformat.write(nb, path)  # the defining notebook itself has no kernelspec: its cells become tasks that do
    wf = Workflow.from_notebook(path)
    assert kernel_problem(wf.tasks["hello"].notebook, None) is None  # type: ignore[attr-defined]


def test_submit_through_the_service_refuses_and_stores_nothing(service: RunningService, tmp_path: Path) -> None:
    client = service.client()
    path = bare_notebook(tmp_path / "scratch.ipynb")
    with Workflow("ok") as wf:
        NotebookTask("train", notebook=path, kernel_name="python3")
    spec = wf.to_spec()
    del spec["tasks"][0]["kernel_name"]  # as a client that does not check would send it
    with pytest.raises(InvalidNotebookError, match=r"notebook '.*scratch\.ipynb' names no kernel"):
        client.submit(spec)
    assert client.workflows() == []


def test_a_task_naming_its_kernel_runs_a_notebook_that_names_none(engine: Engine, tmp_path: Path) -> None:
    path = bare_notebook(tmp_path / "plain.ipynb")
    with Workflow("plain") as wf:
        NotebookTask("nb", notebook=path, parameters={"n": 1}, kernel_name="python3")
    engine.submit(wf)
    ex_id = engine.start_execution("plain")
    engine.wait_for(lambda: engine.execution(ex_id).status.finished, timeout=120, what="the execution to finish")
    [te] = engine.task_executions(ex_id)
    assert (engine.execution(ex_id).status, te.status, te.error) == (WorkflowStatus.SUCCESS, TaskStatus.SUCCESS, None)
    assert "ran 42" in engine.task_log(te.id)
