"""The example notebooks run top to bottom in a real kernel against a real service, and do what they say.

Each test copies a notebook into a temp folder (so its data folder, next to
the notebook, is a temp folder too), runs it with nbclient in a python3
kernel that finds the test's service through AIFLOW_NB_URL/TOKEN, then
checks with a Client what ran.  A cell appended to the notebook prints the
specs the magics drafted in the live kernel: they must equal what
``Workflow.from_notebook`` reads from the file and what the service stored.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell

from aiflow_nb import TaskStatus, Workflow, WorkflowStatus
from aiflow_nb.client import Client
from aiflow_nb.events import keys
from aiflow_nb.workflow.cells import workflows_from_notebook
from aiflow_nb.workflow.records import TaskExecution
from tests.conftest import RunningService
from tests.server import wait

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXAMPLES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))

#: Appended to each notebook: the specs the kernel's magics drafted, as one JSON line.
DRAFTED_MARK = "aiflow-nb-drafted:"
DRAFTED_CELL = f"""
import json
from aiflow_nb.magics import draft
print({DRAFTED_MARK!r} + json.dumps([wf.to_spec() for wf in draft().build_all()]))
"""


@dataclass
class Ran:
    """An executed example: its folder, the executed cells and what its kernel drafted."""

    path: Path
    notebook: NotebookNode
    drafted: list[dict[str, Any]]

    @property
    def folder(self) -> Path:
        return self.path.parent

    def text(self) -> str:
        """Everything the notebook's cells printed."""
        return "".join(
            out.get("text", "") for cell in self.notebook.cells for out in cell.get("outputs", []) if "text" in out
        )


def run_example(name: str, folder: Path, service: RunningService, monkeypatch: pytest.MonkeyPatch) -> Ran:
    """Run notebooks/NAME in a copy in ``folder`` with a kernel that talks to ``service``."""
    folder.mkdir()
    path = folder / name
    shutil.copy(NOTEBOOKS / name, path)
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(new_code_cell(DRAFTED_CELL))
    # The kernel inherits this environment (HOME and AIFLOW_NB_HOME already point at temp folders).
    monkeypatch.setenv("AIFLOW_NB_URL", service.info.url)
    monkeypatch.setenv("AIFLOW_NB_TOKEN", service.info.token)
    executor = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(folder)}})
    try:
        executor.execute()
    finally:
        nbformat.write(nb, folder / f"executed-{name}")  # to look at after a failure
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    drafted = json.loads(printed.split(DRAFTED_MARK, 1)[1])
    return Ran(path, nb, drafted)


def assert_same_specs(ran: Ran, client: Client) -> None:
    """The file read without running, the live kernel's draft and the service agree on every workflow."""
    from_file = [wf.to_spec() for wf in workflows_from_notebook(ran.path)]
    assert from_file == ran.drafted
    for spec in from_file:
        assert Workflow.from_notebook(ran.path, spec["name"]).to_spec() == spec
        assert client.workflow(spec["name"], spec["namespace"]).to_spec() == spec


def summary(runs: list[TaskExecution]) -> list[tuple[str, int, TaskStatus]]:
    return [(te.task, te.seq, te.status) for te in runs]


def ran_in_order(runs: list[TaskExecution]) -> bool:
    pairs = itertools.pairwise(runs)
    return all(a.end_time is not None and b.start_time is not None and a.end_time <= b.start_time for a, b in pairs)


# -- the notebooks as files ----------------------------------------------------------------


def test_the_examples_are_there() -> None:
    assert EXAMPLES == ["quickstart.ipynb", "schedules.ipynb", "spark_watermark.ipynb", "streaming_watermark.ipynb"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_example_is_clean_and_defines_its_workflows(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "commit notebooks without outputs"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert code[0].source == "%load_ext aiflow_nb"
    names = {"quickstart.ipynb": ["quickstart"], "schedules.ipynb": ["nightly", "monitor"],
             "spark_watermark.ipynb": ["spark_clicks", "spark_training"],
             "streaming_watermark.ipynb": ["clicks", "training"]}  # fmt: skip
    assert [wf.name for wf in workflows_from_notebook(NOTEBOOKS / name)] == names[name]


# -- the notebooks run ---------------------------------------------------------------------


def test_quickstart(service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = run_example("quickstart.ipynb", tmp_path / "examples", service, monkeypatch)
    client = service.client()

    [execution] = client.executions(workflow="quickstart")
    assert execution.status == WorkflowStatus.SUCCESS
    runs = client.task_executions(execution.id)
    success = TaskStatus.SUCCESS
    assert summary(runs) == [("extract", 1, success), ("transform", 1, success), ("load", 1, success),
                             ("notify", 1, success)]  # fmt: skip
    assert ran_in_order(runs)

    # notify ran on the event the notebook sent, after the three tasks were done.
    [sent] = client.events(key="report_ready")
    assert sent.value == 42 and sent.create_time is not None and runs[2].end_time is not None
    assert runs[3].event is not None and runs[3].event["offset"] == sent.offset
    assert runs[2].end_time <= sent.create_time
    assert json.loads((ran.folder / "quickstart_data" / "total.json").read_text()) == 55
    assert json.loads((ran.folder / "quickstart_data" / "notified.json").read_text()) == 42

    text = ran.text()
    assert "submitted quickstart version 1" in text
    assert f"started execution {execution.id} of default/quickstart" in text
    assert_same_specs(ran, client)


def test_streaming_watermark(service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = run_example("streaming_watermark.ipynb", tmp_path / "examples", service, monkeypatch)
    client = service.client()

    # One hour_complete per simulated hour, in order, never twice (also across the restart).
    hours = [datetime(2026, 11, 27, h, tzinfo=UTC) for h in range(3)]
    windows = [{"start": h.isoformat(), "end": (h + timedelta(hours=1)).isoformat()} for h in hours]
    assert [e.value for e in client.events(key="hour_complete")] == windows

    # The training workflow ran exactly once per window: train, then evaluate.
    trainings = client.executions(workflow="training")
    assert sorted(e.event["value"]["start"] for e in trainings if e.event) == [w["start"] for w in windows]
    for execution in trainings:
        runs = client.task_executions(execution.id)
        assert execution.status == WorkflowStatus.SUCCESS
        assert summary(runs) == [("train", 1, TaskStatus.SUCCESS), ("evaluate", 1, TaskStatus.SUCCESS)]
        assert ran_in_order(runs)

    # model_drift restarted the stream; the notebook's %aiflow stop ended the second run.
    [clicks] = client.executions(workflow="clicks")
    assert clicks.status == WorkflowStatus.STOPPED
    [drift] = client.events(key="model_drift")

    def stopped_streams() -> list[TaskExecution] | None:
        runs = client.task_executions(clicks.id)
        return runs if all(r.status == TaskStatus.STOPPED for r in runs) else None

    streams = wait(stopped_streams, 60, "both stream runs to be STOPPED")
    assert summary(streams) == [("stream", 1, TaskStatus.STOPPED), ("stream", 2, TaskStatus.STOPPED)]
    assert streams[1].event is not None and streams[1].event["offset"] == drift.offset

    # Each model counted every row of its hour: the hour was complete when it trained, and no batch was
    # written twice across the restart.
    data = ran.folder / "clicks_data"
    batches = sorted(p.stem for p in (data / "clicks").glob("*.parquet"))
    assert batches == [f"{h:%Y%m%dT%H}{m:02d}" for h in hours for m in range(0, 60, 10)]
    counts = dict(
        duckdb.execute(
            f"SELECT strftime(date_trunc('hour', event_time), '%Y%m%dT%H'), count(*) "
            f"FROM read_parquet('{data}/clicks/*.parquet') GROUP BY 1"
        ).fetchall()
    )
    models = {p.stem: json.loads(p.read_text()) for p in (data / "models").glob("*.json")}
    assert {hour: model["rows"] for hour, model in models.items()} == counts
    assert sorted(p.stem for p in (data / "evaluations").glob("*.json")) == sorted(counts)
    assert_same_specs(ran, client)


def test_schedules(service: RunningService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = run_example("schedules.ipynb", tmp_path / "examples", service, monkeypatch)
    client = service.client()

    # The nightly workflow runs next at 03:00 Berlin time, and the notebook showed it.
    due = client.next_runs("nightly")[""].astimezone(ZoneInfo("Europe/Berlin"))
    assert (due.hour, due.minute) == (3, 0) and due > datetime.now(UTC)
    assert f"next run: {due}" in ran.text()

    # The backfilled nights ran once each, with their scheduled time.
    nights = client.executions(workflow="nightly")
    assert [e.status for e in nights] == [WorkflowStatus.SUCCESS] * 2
    scheduled = sorted(e.event["value"]["scheduled_time"] for e in nights if e.event)
    assert scheduled == ["2026-11-25T02:00:00+00:00", "2026-11-26T02:00:00+00:00"]  # 03:00 CET

    # The interval task ran again and again next to the stream until the notebook stopped the execution.
    [monitor] = client.executions(workflow="monitor")
    assert monitor.status == WorkflowStatus.STOPPED
    runs = client.task_executions(monitor.id)
    summaries = [te for te in runs if te.task == "summarize"]
    assert [te.seq for te in summaries] == list(range(1, len(summaries) + 1)) and len(summaries) >= 2
    assert [te.status for te in summaries[:2]] == [TaskStatus.SUCCESS] * 2
    assert all(te.event is not None and te.event["key"] == keys.SCHEDULE_TICK for te in summaries)
    seen = [json.loads((ran.folder / "monitor_data" / f"summary-{n}.json").read_text())["readings"] for n in (1, 2)]
    assert seen[0] <= seen[1] and seen[1] > 0  # each run read what the stream had gathered by then
    assert [te.seq for te in runs if te.task == "collect"] == [1]
    assert "summarize next runs at" in ran.text()
    assert_same_specs(ran, client)
